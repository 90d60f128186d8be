"""What the agent orchestration costs per step, against the same model calls made directly.

A scripted OpenAI-compatible backend (aiohttp, on 127.0.0.1, on this process's event loop)
answers at once: the plan this benchmark chooses when the request's `response_format` is the
json_schema named "plan", a short fixed answer otherwise. An in-process farm (Pool, Ledger,
Metrics, Router, Service, as `modelfarm serve` builds them) has a brain and two workers, all
`backend = "openai"` members pointing at it with `max_concurrency = 64`, and two agents (no
tools), one on each worker. Two plan shapes:

- chain:  s1 -> s2 -> ... -> sN                       (N steps, each given the previous result)
- fanout: s1 .. sN side by side, then j joins them    (N + 1 steps)

For each shape, after two warm-up runs, R rounds of (in this order):

- baseline: the same model calls made directly through the same `ServiceCaller` (so the same
  router, pool, ledger row per call and HTTP client): the plan call, the step calls one after
  another (chain) or with asyncio.gather and then the join (fanout), and the merge call;
- agents:   `AgentRuns(manifest, caller, ledger).run(task)`: plan checks, the DAG executor,
  traces, events, and the run saved to the ledger at its start, after each step and at its end;
- agents, ledger off: the same with `AgentRuns(..., ledger=None)` (requests are still logged).

Reported per shape: p50 wall time of each, and overhead per step in ms = (run p50 - baseline
p50) / steps. The backend shares the event loop and the CPU with the farm in every variant, so
it adds the same to each and cancels out of the difference.

Usage: python benchmarks/agents_overhead.py [--steps 8] [--reps 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from _harness import LOOPBACK, eprint, free_port, machine_info, table
from modelfarm.agents.calls import ServiceCaller
from modelfarm.agents.plan import plan_schema
from modelfarm.agents.run import AgentRuns
from modelfarm.ledger import Ledger
from modelfarm.manifest import Manifest, parse_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.serve.metrics import Metrics
from modelfarm.serve.service import Service

STEP_ANSWER = "Done: the step's result in one short line."
PLANNER = "brain"  # the farm's planner and merger: the backend never delays its answers


# -- the scripted backend ----------------------------------------------------------------


class ScriptedBackend:
    """An OpenAI-compatible chat endpoint that answers from a script, on the running event loop.

    `plan`: the JSON text returned to a request whose response_format is the json_schema "plan".
    `latency`: seconds to wait before answering a request to any model but `instant` (the steps'
    models, not the planner's plan and merge calls). Telling them apart by model, not by prompt
    wording, keeps this working when the agents' prompts change.
    """

    def __init__(self, *, latency: float = 0.0, instant: frozenset[str] = frozenset({PLANNER})) -> None:
        self.plan = '{"steps": []}'
        self.latency = latency
        self.instant = instant
        self.requests = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    async def start(self) -> ScriptedBackend:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema" and (fmt.get("json_schema") or {}).get("name") == "plan":
            return _completion(body.get("model", "?"), self.plan)
        if self.latency and body.get("model") not in self.instant:
            await asyncio.sleep(self.latency)
        return _completion(body.get("model", "?"), STEP_ANSWER)


def _completion(model: str, text: str) -> web.Response:
    n = max(1, len(text.split()))
    return web.json_response(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n},
        }
    )


def plan_text(steps: list[tuple[str, str, str, list[str]]]) -> str:
    """A plan as a planner would write it: (id, agent, instruction, inputs) per step."""
    return json.dumps({"steps": [{"id": i, "agent": a, "instruction": t, "inputs": x} for i, a, t, x in steps]})


# -- the farm ------------------------------------------------------------------------------


class Farm:
    """The in-process gateway parts an agent run uses, as `modelfarm serve` wires them."""

    def __init__(self, manifest: Manifest, ledger_path: Path) -> None:
        self.manifest = manifest
        self.pool = Pool(manifest)
        self.ledger = Ledger(ledger_path)
        self.service = Service(self.pool, self.ledger, Metrics(self.pool), Router(manifest, self.pool))
        self.caller = ServiceCaller(self.service)

    async def aclose(self) -> None:
        await self.pool.aclose()
        self.ledger.close()


def overhead_manifest(base_url: str, steps: int) -> Manifest:
    models = "".join(
        f'[[models]]\nname = "{name}"\nrole = "{role}"\nbackend = "openai"\nbase_url = "{base_url}"\n'
        "max_concurrency = 64\nmax_queue = 64\ntimeout = 30\n\n"
        for name, role in ((PLANNER, "brain"), ("w1", "specialist"), ("w2", "specialist"))
    )
    return parse_manifest(
        '[farm]\nname = "agents-overhead"\n\n'
        f'[orchestration]\nplanner = "{PLANNER}"\nretries = 0\n'
        f"max_steps = {steps + 1}\nmax_depth = {min(32, steps + 1)}\n\n"
        + models
        + '[[agents]]\nname = "a"\ndescription = "Worker A."\nmodel = "w1"\nmax_tokens = 64\n\n'
        '[[agents]]\nname = "b"\ndescription = "Worker B."\nmodel = "w2"\nmax_tokens = 64\n'
    )


def chain_plan(n: int) -> list[tuple[str, str, str, list[str]]]:
    return [
        (f"s{i}", "ab"[i % 2], f"Do part {i} of the task.", [f"s{i - 1}"] if i > 1 else []) for i in range(1, n + 1)
    ]


def fanout_plan(n: int) -> list[tuple[str, str, str, list[str]]]:
    branches = [(f"s{i}", "ab"[i % 2], f"Do part {i} of the task.", list[str]()) for i in range(1, n + 1)]
    return [*branches, ("j", "a", "Join the parts.", [s[0] for s in branches])]


# -- the direct baseline -------------------------------------------------------------------


async def baseline(farm: Farm, shape: str, steps: list[tuple[str, str, str, list[str]]]) -> None:
    """The run's model calls, made directly: plan, steps (as the DAG allows), merge."""
    call = farm.caller
    penalty = farm.manifest.orchestration.frequency_penalty  # what the agents send with answers
    model_of = {a.name: a.model for a in farm.manifest.agents}
    schema = plan_schema([a.name for a in farm.manifest.agents], farm.manifest.orchestration.max_steps)
    fmt = {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}}
    await call(PLANNER, [{"role": "user", "content": "Task: the task"}], max_tokens=768, response_format=fmt)

    async def step(agent: str, instruction: str, given: list[str]) -> str:
        context = "\n\n".join(f"Result of step {i}:\n{text}" for i, text in enumerate(given))
        messages = [
            {"role": "system", "content": f"You are the {agent} agent."},
            {"role": "user", "content": f"{context}\n\nYour task: {instruction}" if context else instruction},
        ]
        return (await call(model_of[agent], messages, max_tokens=64, frequency_penalty=penalty)).text

    outputs: list[str] = []
    if shape == "chain":
        for _, agent, instruction, _inputs in steps:
            outputs.append(await step(agent, instruction, outputs[-1:]))
    else:
        *branches, join = steps
        outputs = list(await asyncio.gather(*(step(a, t, []) for _, a, t, _ in branches)))
        outputs.append(await step(join[1], join[2], outputs))
    blocks = "\n\n".join(f"[s{i}] (a): {text}" for i, text in enumerate(outputs))
    merge = [{"role": "system", "content": "Write the final answer."}, {"role": "user", "content": blocks}]
    await call(PLANNER, merge, max_tokens=farm.manifest.orchestration.answer_max_tokens, frequency_penalty=penalty)


# -- measuring -----------------------------------------------------------------------------


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await work()
    return (time.perf_counter() - t0) * 1000


async def measure_shape(farm: Farm, backend: ScriptedBackend, shape: str, n: int, reps: int) -> dict[str, Any]:
    steps = chain_plan(n) if shape == "chain" else fanout_plan(n)
    backend.plan = plan_text(steps)
    with_ledger = AgentRuns(farm.manifest, farm.caller, farm.ledger)
    without = AgentRuns(farm.manifest, farm.caller, None)
    task = f"Do the {shape} task."

    async def run(runs: AgentRuns) -> None:
        trace = await runs.run(task)
        if trace.status != "ok" or trace.plan_source != "planned" or len(trace.steps) != len(steps):
            raise RuntimeError(f"the {shape} run did not go as scripted: {trace.status} {trace.error}")

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "baseline": lambda: baseline(farm, shape, steps),
        "agents": lambda: run(with_ledger),
        "agents_no_ledger": lambda: run(without),
    }
    for _ in range(2):  # warm-up: connections, first ledger writes, code paths
        for work in variants.values():
            await work()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):  # interleaved, so drift on a shared machine hits every variant alike
        for name, work in variants.items():
            samples[name].append(await timed(work))
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    count = len(steps)
    return {
        "shape": shape,
        "steps": count,
        "model_calls": count + 2,
        "baseline_p50_ms": round(p50["baseline"], 2),
        "run_p50_ms": round(p50["agents"], 2),
        "run_no_ledger_p50_ms": round(p50["agents_no_ledger"], 2),
        "overhead_per_step_ms": round((p50["agents"] - p50["baseline"]) / count, 3),
        "overhead_per_step_no_ledger_ms": round((p50["agents_no_ledger"] - p50["baseline"]) / count, 3),
        "samples_ms": {k: [round(x, 2) for x in v] for k, v in samples.items()},
    }


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    backend = await ScriptedBackend().start()
    try:
        with tempfile.TemporaryDirectory(prefix="modelfarm-agents-") as tmp:
            farm = Farm(overhead_manifest(backend.base_url, args.steps), Path(tmp) / "ledger.db")
            try:
                shapes = []
                for shape in ("chain", "fanout"):
                    eprint(f"{shape}: {args.steps} steps, {args.reps} rounds ...")
                    shapes.append(await measure_shape(farm, backend, shape, args.steps, args.reps))
            finally:
                await farm.aclose()
    finally:
        await backend.stop()
    return {
        "benchmark": "agents_overhead",
        **machine_info(),
        "n": args.steps,
        "reps": args.reps,
        "shapes": shapes,
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            s["shape"],
            s["steps"],
            s["baseline_p50_ms"],
            s["run_p50_ms"],
            s["run_no_ledger_p50_ms"],
            s["overhead_per_step_ms"],
            s["overhead_per_step_no_ledger_ms"],
        ]
        for s in result["shapes"]
    ]
    headers = ["shape", "steps", "baseline p50 ms", "run p50 ms", "no-ledger p50 ms", "ms/step", "ms/step no ledger"]
    return table(headers, rows) + f"\n(1-minute load average at the end: {result['loadavg_1m']:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="N: chain length, and fan-out width (1-31)")
    parser.add_argument("--reps", type=int, default=20, help="R: timed rounds per shape (after 2 warm-up rounds)")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line on stdout")
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= 31:
        parser.error("--steps must be between 1 and 31 (the manifest allows a plan 32 steps deep at most)")
    result = asyncio.run(run_benchmark(args))
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
