"""Run a plan's DAG on asyncio: every step whose inputs are ready starts at once.

How many really run together is the pool's business: each model has its own concurrency limit
and queue, so four steps on one single-slot model take turns while steps on different models
overlap. Per step: a timeout per try, retries with exponential backoff on the same model, then
the agent's fallback model. A failed step's dependants are skipped (the trace says which step
they were waiting for). Cancelling `run` cancels every running step and marks it cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from modelfarm.agents.agent import AgentRunner
from modelfarm.agents.plan import Plan, Step
from modelfarm.agents.trace import Emit, Event, RunTrace, StepTrace
from modelfarm.errors import FarmError, ToolError
from modelfarm.manifest import Manifest


class EmptyAnswerError(FarmError):
    status = 502
    code = "empty_answer"


class Executor:
    def __init__(
        self,
        manifest: Manifest,
        runner: AgentRunner,
        trace: RunTrace,
        emit: Emit,
        clock: Callable[[], float],
        on_step_end: Callable[[], None] = lambda: None,
    ) -> None:
        self.manifest = manifest
        self.settings = manifest.orchestration
        self.runner = runner
        self.trace = trace
        self.emit = emit
        self.clock = clock
        self.on_step_end = on_step_end
        self.outputs: dict[str, tuple[str, str]] = {}
        """Step id -> (agent, output) of every step that succeeded, across plans of this run."""
        self.failed: dict[str, str] = {}
        """Step id -> why, for steps that failed (not those skipped)."""

    def _event(self, kind: str, **data: Any) -> None:
        self.emit(Event(kind, data, self.clock()))

    async def run(self, plan: Plan, *, note: str | None = None) -> None:
        for step in plan.steps:
            self.trace.steps.append(StepTrace(step.id, step.agent, step.instruction, list(step.inputs), note=note))
        pending = {s.id for s in plan.steps}
        running: dict[asyncio.Task[None], str] = {}
        try:
            while pending or running:
                self._skip_blocked(plan, pending)
                for sid in sorted(pending):
                    step = plan.step(sid)
                    if all(i in self.outputs for i in step.inputs):
                        pending.discard(sid)
                        running[asyncio.create_task(self._step(step), name=f"step {sid}")] = sid
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    running.pop(task)
                    task.result()  # _step records its own failures; anything else is a bug: raise it
        except BaseException:
            for task, sid in running.items():
                task.cancel()
                st = self.trace.step(sid)
                st.status, st.end, st.error = "cancelled", self.clock(), "the run was cancelled"
            await asyncio.gather(*running, return_exceptions=True)
            for sid in pending:
                self.trace.step(sid).status = "cancelled"
            raise

    def _skip_blocked(self, plan: Plan, pending: set[str]) -> None:
        """Skip (transitively) every pending step with an input that failed or was skipped."""
        changed = True
        while changed:
            changed = False
            for sid in sorted(pending):
                step = plan.step(sid)
                dead = [i for i in step.inputs if self._dead(i)]
                if dead:
                    pending.discard(sid)
                    st = self.trace.step(sid)
                    st.status = "skipped"
                    st.note = f"skipped: input {dead[0]} " + ("failed" if dead[0] in self.failed else "was skipped")
                    self._event("step_skipped", step=sid, agent=step.agent, reason=st.note)
                    changed = True

    def _dead(self, step_id: str) -> bool:
        if step_id in self.outputs:
            return False
        try:
            return self.trace.step(step_id).status in ("failed", "skipped", "cancelled")
        except StopIteration:
            return False

    async def _step(self, step: Step) -> None:
        st = self.trace.step(step.id)
        agent = self.manifest.agent(step.agent)
        assert agent is not None  # parse_plan only accepts known agents
        st.status, st.start = "running", self.clock()
        self._event("step_started", step=step.id, agent=agent.name, model=agent.model, inputs=list(step.inputs))
        inputs = {i: self.outputs[i] for i in step.inputs}
        models = [agent.model] * (1 + self.settings.retries) + ([agent.fallback] if agent.fallback else [])
        delay = self.settings.backoff
        last: BaseException | None = None
        for i, model in enumerate(models):
            t0 = self.clock()
            try:
                async with asyncio.timeout(self.settings.step_timeout):
                    work = await self.runner.run(agent, step, inputs, model)
                if not work.output:
                    raise EmptyAnswerError(f"model {work.model!r} gave an empty answer")
            except (FarmError, TimeoutError) as exc:
                last = exc
                timeout = isinstance(exc, TimeoutError)
                why = f"no answer within {self.settings.step_timeout:g} s" if timeout else _message(exc)
                st.attempts.append(
                    {
                        "model": model,
                        "outcome": "timeout" if timeout else "error",
                        "error": why,
                        "seconds": round(self.clock() - t0, 3),
                    }
                )
                if i + 1 < len(models):
                    nxt = models[i + 1]
                    wait = delay if nxt == model else 0.0
                    self._event("step_retry", step=step.id, agent=agent.name, error=why, next_model=nxt, after=wait)
                    if wait:
                        await asyncio.sleep(wait)
                        delay *= 2
                continue
            st.attempts.append({"model": model, "outcome": "ok", "seconds": round(self.clock() - t0, 3)})
            st.status, st.end, st.model, st.output = "ok", self.clock(), work.model, work.output
            st.tokens_in, st.tokens_out, st.cost = work.tokens_in, work.tokens_out, work.cost
            st.requests, st.tools = work.requests, work.tools
            self.outputs[step.id] = (agent.name, work.output)
            self._event(
                "step_finished", step=step.id, agent=agent.name, model=work.model, seconds=round(st.end - st.start, 3),
                tokens=work.tokens_out, output=work.output[:500],
            )  # fmt: skip
            self.on_step_end()
            return
        st.status, st.end = "failed", self.clock()
        st.error = _message(last) if last is not None else "no model to try"
        if isinstance(last, TimeoutError):
            st.error = f"no answer within {self.settings.step_timeout:g} s"
        self.failed[step.id] = st.error
        self._event("step_failed", step=step.id, agent=agent.name, error=st.error)
        self.on_step_end()


def _message(exc: BaseException) -> str:
    if isinstance(exc, ToolError | FarmError):
        return f"{type(exc).__name__}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
