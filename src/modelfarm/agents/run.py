"""An agent run: the planner plans, the executor runs the DAG, the planner model merges.

`AgentRuns.run(task)` returns the whole `RunTrace`; live `Event`s go to an optional callback.
The run is saved to the ledger when it starts, after every step and when it ends, so a crash
or a cancelled client leaves a trace of what was done.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from modelfarm.agents.agent import AgentRunner
from modelfarm.agents.calls import ModelCaller, Reply
from modelfarm.agents.executor import Executor
from modelfarm.agents.merge import merge
from modelfarm.agents.plan import single_step_plan
from modelfarm.agents.planner import Planner, pick_fallback_agent, results_context
from modelfarm.agents.tools import ToolBox
from modelfarm.agents.trace import Emit, Event, RunTrace
from modelfarm.errors import ConfigError, InvalidRequestError
from modelfarm.ledger import Ledger
from modelfarm.manifest import Manifest

MAX_TASK_CHARS = 8000


def planner_model(manifest: Manifest) -> str:
    """`[orchestration] planner`, else the farm's brain, else the `auto` policy."""
    if manifest.orchestration.planner:
        return manifest.orchestration.planner
    brain = next((m for m in manifest.models if m.role == "brain" and m.backend != "embedding"), None)
    return brain.name if brain else "auto"


class AgentRuns:
    def __init__(
        self, manifest: Manifest, caller: ModelCaller, ledger: Ledger | None = None, *, constrained: bool = True
    ) -> None:
        self.manifest = manifest
        self.constrained = constrained
        """Ask the planner for JSON under the plan's schema (a grammar locally); off: free text."""
        self.caller = caller
        self.ledger = ledger
        toolbox = None
        if any(a.tools for a in manifest.agents):
            workspace = (manifest.base_dir / manifest.orchestration.workspace).resolve()
            toolbox = ToolBox(workspace, modules_dir=manifest.base_dir)
        self.runner = AgentRunner(manifest, caller, toolbox)
        for agent in manifest.agents:  # unknown tools are a manifest error: say so before any run
            self.runner.tools_of(agent)
        self.model = planner_model(manifest)

    def planner(self) -> Planner:
        agents = list(self.manifest.agents)
        return Planner(self.caller, self.model, agents, self.manifest.orchestration, constrained=self.constrained)

    async def run(self, task: str, *, emit: Emit | None = None, run_id: str | None = None) -> RunTrace:
        task = task.strip()
        if not task:
            raise InvalidRequestError("the task is empty: say what the agents should do", param="task")
        if len(task) > MAX_TASK_CHARS:
            raise InvalidRequestError(f"the task is longer than {MAX_TASK_CHARS} characters", param="task")
        if not self.manifest.agents:
            raise ConfigError(
                "this farm declares no agents: add [[agents]] entries to farm.toml (see `modelfarm init`)"
            )
        t0 = time.perf_counter()
        trace = RunTrace(run_id or "run-" + uuid.uuid4().hex[:16], task, planner=self.model)

        def clock() -> float:
            return time.perf_counter() - t0

        def send(event: Event) -> None:
            if emit is not None:
                emit(event)

        replies: list[Reply] = []  # planning and synthesis calls (steps keep their own)
        self._save(trace)
        try:
            await self._run(trace, send, clock, replies)
        except asyncio.CancelledError:
            trace.status, trace.error = "cancelled", "the run was cancelled (the client went away)"
            raise
        except Exception as exc:
            trace.status, trace.error = "failed", f"{type(exc).__name__}: {exc}"
            send(Event("error", {"error": trace.error}, clock()))
            raise
        finally:
            trace.duration = round(clock(), 4)
            self._total(trace, replies)
            self._save(trace)
        return trace

    async def _run(self, trace: RunTrace, send: Emit, clock: Callable[[], float], replies: list[Reply]) -> None:
        planner = self.planner()
        started = clock()
        result = await planner.plan(trace.task)
        replies += result.replies
        trace.overhead["plan_s"] = round(clock() - started, 4)
        trace.plan, trace.plan_source, trace.plan_attempts = result.plan.as_dict(), result.source, result.refused
        send(Event("plan", {"source": result.source, "refused": len(result.refused), **result.plan.as_dict()}, clock()))

        executor = Executor(self.manifest, self.runner, trace, send, clock, on_step_end=lambda: self._save(trace))
        await executor.run(result.plan)

        if executor.failed and self.manifest.orchestration.on_failure == "replan":
            await self._replan(trace, executor, planner, send, clock, replies)

        ok = [s for s in trace.steps if s.status == "ok"]
        if not ok:
            trace.status, trace.error = "failed", "no step succeeded: " + "; ".join(executor.failed.values())
            send(Event("error", {"error": trace.error}, clock()))
            return
        started = clock()
        send(Event("synthesis", {"model": self.model, "steps": [s.id for s in ok]}, clock()))
        if len(ok) == 1 and len(trace.steps) == 1:
            trace.answer = ok[0].output  # one step: its answer is the answer, no merge needed
            trace.sources = {ok[0].id: [ok[0].agent, ok[0].output[:80]]}
        else:
            orch = self.manifest.orchestration
            merged = await merge(
                self.caller, self.model, trace.task, ok, [s for s in trace.steps if s.status != "ok"],
                share=self.runner.budget(self.model, orch.answer_max_tokens) // len(ok),
                max_tokens=orch.answer_max_tokens, frequency_penalty=orch.frequency_penalty,
            )  # fmt: skip
            replies += merged.replies
            trace.answer, trace.sources = merged.answer, merged.sources
        trace.overhead["synthesis_s"] = round(clock() - started, 4)
        trace.status = "ok"  # an answer came; failed or skipped steps are in the trace
        send(Event("answer", {"answer": trace.answer, "sources": trace.sources}, clock()))

    async def _replan(
        self,
        trace: RunTrace,
        executor: Executor,
        planner: Planner,
        send: Emit,
        clock: Callable[[], float],
        replies: list[Reply],
    ) -> None:
        """Once: plan what is left, given what is done, and run it."""
        started = clock()
        done = frozenset(executor.outputs)
        context = results_context(executor.outputs, executor.failed)
        taken = frozenset(s.id for s in trace.steps)
        result = await planner.plan(trace.task, context=context, done=done, taken=taken)
        replies += result.replies
        plan = result.plan
        if result.source == "fallback":
            fresh = next(f"r{i}" for i in range(1, 1000) if f"r{i}" not in taken)
            plan = single_step_plan(trace.task, pick_fallback_agent(trace.task, list(self.manifest.agents)).name, fresh)
        trace.overhead["replan_s"] = round(clock() - started, 4)
        send(Event("replan", {"after": sorted(executor.failed), "source": result.source, **plan.as_dict()}, clock()))
        await executor.run(plan, note=f"re-planned after {', '.join(sorted(executor.failed))} failed")

    @staticmethod
    def _total(trace: RunTrace, replies: list[Reply]) -> None:
        """Run totals: planning and synthesis calls plus every step."""
        trace.tokens_in = sum(r.tokens_in for r in replies) + sum(s.tokens_in for s in trace.steps)
        trace.tokens_out = sum(r.tokens_out for r in replies) + sum(s.tokens_out for s in trace.steps)
        trace.cost = sum(r.cost for r in replies) + sum(s.cost for s in trace.steps)

    def _save(self, trace: RunTrace) -> None:
        if self.ledger is not None:
            self.ledger.save_run(trace.as_dict())
