"""`auto` on the default farm: brain share and answer quality against always-small and always-brain.

Two prompt sets with answers that can be checked by string match: one the small model handles
(one-word facts), one it does not (multi-step arithmetic word problems). Each set runs under
three policies on the real models, in one process: `small` (always the micro model), `brain`
(always the brain), and `auto` (the default farm's policy: skill match, its shipped learned
router, cascade escalates weak answers). Reported per policy: accuracy per set, the share of answers served by the brain, and
wall time. Generation is greedy (temperature 0, fixed seed) so that runs repeat.

Usage: python benchmarks/routing_default_farm.py [--policies small,brain,auto] [--json]
"""

# ruff: noqa: E501  (the prompt sets read better one case a line)

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from modelfarm.manifest import load_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.execute import Execution
from modelfarm.routing.router import Router
from modelfarm.types import ChatRequest, Message


@dataclass(frozen=True)
class Case:
    prompt: str
    answer: str


EASY = [
    Case("What is the capital of France? Answer with one word.", "paris"),
    Case("What color is the sky on a clear day? Answer with one word.", "blue"),
    Case("How many days are in a week? Answer with a number.", "7"),
    Case("What is the opposite of 'hot'? Answer with one word.", "cold"),
    Case("Which animal says 'meow'? Answer with one word.", "cat"),
    Case("What is 2 + 3? Answer with a number.", "5"),
    Case("What is the first letter of the English alphabet? Answer with one letter.", "a"),
    Case("What do bees make? Answer with one word.", "honey"),
]
HARD = [
    Case(
        "A shop sells pens at 3 dollars each. Tom buys 7 pens and pays with a 50 dollar bill. How much change does he get? Answer with a number.",
        "29",
    ),
    Case(
        "Anna has 12 apples. She gives a third of them to Ben and then buys 5 more. How many apples does she have now? Answer with a number.",
        "13",
    ),
    Case(
        "A train travels 60 km per hour for 2.5 hours. How many km does it travel? Answer with a number.",
        "150",
    ),
    Case(
        "A class has 24 students. Three quarters of them passed the exam. How many students failed? Answer with a number.",
        "6",
    ),
    Case(
        "A book costs 18 dollars. It is on sale for one third off. What is the sale price in dollars? Answer with a number.",
        "12",
    ),
    Case(
        "Sam saves 15 dollars every week. How many weeks does he need to save 240 dollars? Answer with a number.", "16"
    ),
    Case(
        "A rectangle is 9 cm long and 4 cm wide. What is its perimeter in cm? Answer with a number.",
        "26",
    ),
    Case(
        "There are 5 boxes with 14 pencils each. 23 pencils are given away. How many pencils are left? Answer with a number.",
        "47",
    ),
]


def correct(case: Case, text: str) -> bool:
    text = text.lower()
    if case.answer.isdigit():
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        return bool(numbers) and float(numbers[-1]) == float(case.answer)
    return re.search(rf"\b{re.escape(case.answer)}\b", text) is not None


async def run_policy(router: Router, pool: Pool, policy: str, cases: list[Case]) -> dict[str, Any]:
    right, brain, started = 0, 0, time.perf_counter()
    for case in cases:
        messages = [Message("user", case.prompt)]
        decision = await router.decide(policy, messages)
        request = ChatRequest(messages, max_tokens=160, temperature=0, seed=7)
        exe = Execution(pool, router.breaker, decision, request)
        result = await exe.complete()
        right += correct(case, result.text)
        brain += exe.served == "brain"
    return {
        "accuracy": right / len(cases),
        "brain_share": brain / len(cases),
        "seconds": time.perf_counter() - started,
    }


async def run(policies: list[str]) -> dict[str, Any]:
    manifest = load_manifest(None)
    pool = Pool(manifest)
    router = Router(manifest, pool)
    out: dict[str, Any] = {}
    try:
        for policy in policies:
            out[policy] = {
                "easy": await run_policy(router, pool, policy, EASY),
                "hard": await run_policy(router, pool, policy, HARD),
            }
    finally:
        await pool.aclose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="small,brain,auto", help="comma-separated models or policies")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.policies.split(",")))
    if not args.json:
        print(f"{'policy':8s} {'set':5s} {'accuracy':>9s} {'brain share':>12s} {'seconds':>8s}")
        for policy, sets in result.items():
            for name, r in sets.items():
                print(f"{policy:8s} {name:5s} {r['accuracy']:9.0%} {r['brain_share']:12.0%} {r['seconds']:8.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
