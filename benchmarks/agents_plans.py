"""How often the local brain writes a valid plan, with and without constrained decoding.

For each task of the inbox example (`examples/inbox/tasks.jsonl`, 30 tasks) and each mode,
the planner of the inbox farm (`examples/inbox/farm.toml`: the brain, Qwen2.5-Coder-1.5B-Instruct
Q4_K_M, on llama.cpp) plans the task exactly as an agent run does:

    AgentRuns(manifest, ServiceCaller(service), None, constrained=X).planner().plan(task)

- constrained: the request carries the plan's JSON schema as `response_format`, which the
  llama.cpp backend turns into a grammar (the agents' default);
- free: no `response_format`; the planner relies on its prompt and on `parse_plan` finding the
  JSON in the answer.

Counted per mode, from `PlanResult.source`: planned (the first answer was a valid plan),
repaired (the second, after being told what was wrong), fallback (neither: one agent does the
whole task). Also: mean plan width (most steps on one level) and depth (levels) over the plans
that came from the model, seconds per plan (both tries included), model calls, and answers cut
off by max_tokens. Nothing is executed: only the planning calls run.

This is slow on a CPU: tens of seconds per plan on 2 cores, so the full run (30 tasks x 2 modes)
takes about an hour or more; `--limit` runs the first N tasks. The brain is loaded once, before
the clock starts. The request ledger is in memory, and nothing is written to the repository
(chunked weights are assembled once under ~/.cache/modelfarm, as for any farm). Progress goes to
stderr, one line a plan; the last line on stdout is one JSON object.

Usage: python benchmarks/agents_plans.py [--limit 30] [--modes constrained,free] [--max-tokens N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import REPO, eprint, machine_info, table
from modelfarm.agents.calls import ModelCaller, Reply, ServiceCaller
from modelfarm.agents.run import AgentRuns
from modelfarm.ledger import Ledger
from modelfarm.manifest import load_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.serve.metrics import Metrics
from modelfarm.serve.service import Service

INBOX = REPO / "examples" / "inbox"
MODES = {"constrained": True, "free": False}


@dataclass
class Recorder:
    """A ModelCaller in front of another: records each call, and may lower its max_tokens."""

    inner: ModelCaller
    max_tokens: int | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, model: str, messages: list[dict[str, str]], *, max_tokens: int, **options: Any) -> Reply:
        # Every other option (response_format, temperature, penalties, ...) passes through as given,
        # so this wrapper keeps up when the ModelCaller protocol grows.
        limit = min(max_tokens, self.max_tokens) if self.max_tokens else max_tokens
        t0 = time.perf_counter()
        reply = await self.inner(model, messages, max_tokens=limit, **options)
        self.calls.append(
            {
                "seconds": round(time.perf_counter() - t0, 2),
                "tokens_out": reply.tokens_out,
                "cut": reply.finish_reason == "length",
            }
        )
        return reply


def load_tasks(path: Path, limit: int) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line)["task"] for line in lines][:limit]


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    manifest = load_manifest(args.farm)
    tasks = load_tasks(args.tasks, args.limit)
    pool = Pool(manifest)
    ledger = Ledger(":memory:")
    recorder = Recorder(ServiceCaller(Service(pool, ledger, Metrics(pool), Router(manifest, pool))), args.max_tokens)
    planners = {mode: AgentRuns(manifest, recorder, None, constrained=MODES[mode]).planner() for mode in args.modes}
    model = next(iter(planners.values())).model
    plans: list[dict[str, Any]] = []
    try:
        eprint(f"loading the planner model {model!r} ...")
        t0 = time.perf_counter()
        await pool.preload([model])
        eprint(f"loaded in {time.perf_counter() - t0:.1f} s; {len(tasks)} task(s) x {len(planners)} mode(s)")
        for i, task in enumerate(tasks, 1):
            for mode, planner in planners.items():  # modes alternate, so load changes hit both alike
                recorder.calls.clear()
                t0 = time.perf_counter()
                result = await planner.plan(task)
                seconds = time.perf_counter() - t0
                row = {
                    "task": i,
                    "mode": mode,
                    "source": result.source,
                    "steps": len(result.plan.steps),
                    "width": result.plan.width,
                    "depth": result.plan.depth,
                    "agents": sorted({s.agent for s in result.plan.steps}),
                    "seconds": round(seconds, 2),
                    "calls": len(recorder.calls),
                    "tokens_out": sum(c["tokens_out"] for c in recorder.calls),
                    "cut": sum(c["cut"] for c in recorder.calls),
                    "errors": [r["error"][:200] for r in result.refused],
                }
                plans.append(row)
                why = f"  ({row['errors'][-1][:90]})" if row["errors"] else ""
                eprint(
                    f"[{i}/{len(tasks)}] {mode:11s} {result.source:8s} {row['steps']} steps, "
                    f"width {row['width']} depth {row['depth']}, {seconds:5.1f} s, {row['tokens_out']} tokens{why}"
                )
    finally:
        await pool.aclose()
        ledger.close()
    return {
        "benchmark": "agents_plans",
        **machine_info(),
        "planner": model,
        "tasks": len(tasks),
        "max_tokens": args.max_tokens,
        "modes": {mode: summarize([p for p in plans if p["mode"] == mode]) for mode in planners},
        "plans": plans,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sources = Counter(r["source"] for r in rows)
    modelled = [r for r in rows if r["source"] != "fallback"]  # a fallback's 1x1 plan says nothing of the model

    def mean(key: str, of: list[dict[str, Any]]) -> float | None:
        return round(statistics.mean(r[key] for r in of), 2) if of else None

    n = len(rows)
    return {
        "plans": n,
        "planned": sources["planned"],
        "repaired": sources["repaired"],
        "fallback": sources["fallback"],
        "valid_first_share": round(sources["planned"] / n, 3) if n else None,
        "valid_share": round(len(modelled) / n, 3) if n else None,
        "mean_width": mean("width", modelled),
        "mean_depth": mean("depth", modelled),
        "mean_steps": mean("steps", modelled),
        "mean_seconds": mean("seconds", rows),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2) if rows else None,
        "mean_calls": mean("calls", rows),
        "answers_cut": sum(r["cut"] for r in rows),
    }


def report(result: dict[str, Any]) -> str:
    keys = ["planned", "repaired", "fallback", "valid_first_share", "mean_width", "mean_depth", "mean_seconds"]
    keys += ["mean_calls", "answers_cut"]
    rows = [[mode, s["plans"], *(s[k] for k in keys)] for mode, s in result["modes"].items()]
    headers = ["mode", "plans", "planned", "repaired", "fallback", "valid 1st", "width", "depth", "s/plan"]
    headers += ["calls/plan", "cut"]
    return table(headers, rows) + f"\n(1-minute load average at the end: {result['loadavg_1m']:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=30, help="plan only the first N tasks")
    parser.add_argument(
        "--modes",
        default="constrained,free",
        help="comma-separated: constrained (JSON schema as a grammar), free (no response_format)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="cap the planner's max_tokens (default: the planner's own, 768); a lower cap is faster "
        "but may cut plans off",
    )
    parser.add_argument("--farm", type=Path, default=INBOX / "farm.toml", help="the farm whose planner is measured")
    parser.add_argument("--tasks", type=Path, default=INBOX / "tasks.jsonl", help='JSON lines with a "task" field')
    parser.add_argument("--json", action="store_true", help="print only the final JSON line on stdout")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        parser.error(f"--modes: unknown {unknown}; use constrained, free or both")
    if args.limit < 1:
        parser.error("--limit must be at least 1")
    result = asyncio.run(run_benchmark(args))
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
