"""What an agent run leaves behind: one record per step, one per run, and the live events.

Times are seconds from the start of the run (`start`, `end`), so a trace shows at a glance
which steps overlapped. The same dicts go to the ledger, to `--json`, and to
`GET /v1/agents/runs/{id}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StepStatus = Literal["pending", "running", "ok", "failed", "skipped", "cancelled"]


@dataclass(slots=True)
class StepTrace:
    id: str
    agent: str
    instruction: str
    inputs: list[str]
    status: StepStatus = "pending"
    model: str | None = None
    """The model that produced the output (after retries, fallback or routing)."""
    output: str = ""
    error: str | None = None
    start: float | None = None
    end: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """One entry per try: model, outcome (ok | error | timeout), error, seconds."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tool calls: name, args, ok, chars of output (or the error)."""
    requests: list[str] = field(default_factory=list)
    """Ledger ids of the model calls this step made."""
    note: str | None = None
    """Why a step was skipped, or that it came from a re-plan."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunTrace:
    id: str
    task: str
    status: Literal["running", "ok", "failed", "cancelled"] = "running"
    created: float = field(default_factory=time.time)
    planner: str | None = None
    plan: dict[str, Any] | None = None
    plan_source: str | None = None
    """planned | repaired | fallback (one agent does the whole task)."""
    plan_attempts: list[dict[str, Any]] = field(default_factory=list)
    """Each planner answer that was refused, with the reason."""
    steps: list[StepTrace] = field(default_factory=list)
    answer: str | None = None
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Which steps the answer cites, by step id: the agent and the first words of its output."""
    error: str | None = None
    duration: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    overhead: dict[str, float] = field(default_factory=dict)
    """Seconds in planning and synthesis (model calls included)."""

    def step(self, step_id: str) -> StepTrace:
        return next(s for s in self.steps if s.id == step_id)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # steps included (asdict recurses into dataclasses)


@dataclass(frozen=True, slots=True)
class Event:
    """A live event: `plan`, `step_started`, `step_retry`, `step_finished`, `step_failed`,
    `step_skipped`, `replan`, `synthesis`, `answer`, `error`."""

    type: str
    data: dict[str, Any]
    at: float
    """Seconds from the start of the run."""

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "at": round(self.at, 4), **self.data}


Emit = Callable[[Event], None]
