"""A plan: a DAG of steps `{id, agent, instruction, inputs}`, its JSON schema, and its checks.

The planner model is asked for JSON that matches `plan_schema` (constrained decoding where the
backend has it); `parse_plan` then checks what a schema cannot: ids unique, agents known,
inputs naming earlier-declared or later steps that exist, no cycle, bounded size and depth.
Every refusal is a `PlanError` whose message is written to be shown to the planner in a repair
request, so it says exactly what to change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelfarm.errors import FarmError


class PlanError(FarmError):
    """A plan does not parse or does not form a valid bounded DAG over known agents."""

    status = 502
    type = "server_error"
    code = "invalid_plan"


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    agent: str
    instruction: str
    inputs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "instruction": self.instruction, "inputs": list(self.inputs)}


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    levels: dict[str, int] = field(default_factory=dict)
    """Depth of each step: 0 for steps without inputs, else 1 + the deepest input."""

    @property
    def depth(self) -> int:
        return 1 + max(self.levels.values(), default=-1)

    @property
    def width(self) -> int:
        """The most steps on one level: how many could run at once."""
        counts: dict[int, int] = {}
        for level in self.levels.values():
            counts[level] = counts.get(level, 0) + 1
        return max(counts.values(), default=0)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def dependants(self, step_id: str) -> set[str]:
        """Every step that needs `step_id`, directly or through others."""
        out: set[str] = set()
        frontier = {step_id}
        while frontier:
            nxt = {s.id for s in self.steps if frontier & set(s.inputs)} - out
            out |= nxt
            frontier = nxt
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"steps": [s.as_dict() for s in self.steps]}


def plan_schema(agents: list[str], max_steps: int) -> dict[str, Any]:
    """The JSON schema the planner's answer must match (kept simple: grammar converters
    and small models both do better without patterns or conditionals)."""
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_steps,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "agent": {"type": "string", "enum": agents},
                        "instruction": {"type": "string"},
                        "inputs": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["id", "agent", "instruction", "inputs"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _json_object(text: str) -> Any:
    """The JSON in a model's answer: the whole text, a fenced block, or the first {...}."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            continue
    raise PlanError('the answer is not JSON: answer with one JSON object {"steps": [...]} and nothing else')


def parse_plan(
    text: str | dict[str, Any],
    agents: list[str],
    *,
    max_steps: int,
    max_depth: int,
    done: frozenset[str] = frozenset(),
    taken: frozenset[str] = frozenset(),
) -> Plan:
    """Check a planner's answer; raise PlanError saying what to fix.

    `done`: ids of steps finished before this plan (a re-plan may use them as inputs);
    `taken`: ids already used in this run (failed and skipped steps too), which new steps may not reuse."""
    data = _json_object(text) if isinstance(text, str) else text
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise PlanError('the plan must be an object with a "steps" array')
    raw_steps: list[Any] = data["steps"]
    if not raw_steps:
        raise PlanError("the plan has no steps: give at least one")
    if len(raw_steps) > max_steps:
        raise PlanError(f"the plan has {len(raw_steps)} steps; at most {max_steps} are allowed: merge some")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            raise PlanError(f"step {i + 1} is not an object with id, agent, instruction, inputs")
        sid = str(raw.get("id") or "").strip()
        agent = str(raw.get("agent") or "").strip()
        instruction = str(raw.get("instruction") or "").strip()
        inputs = raw.get("inputs") or []
        if not sid:
            raise PlanError(f"step {i + 1} has no id: give every step a short unique id such as s{i + 1}")
        if agent not in agents:
            raise PlanError(f"step {sid!r} names agent {agent!r}, which does not exist; use one of {agents}")
        if not instruction:
            raise PlanError(f"step {sid!r} has no instruction: say what the agent must do")
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            raise PlanError(f'step {sid!r}: "inputs" must be a list of step ids')
        steps.append(Step(sid, agent, instruction, tuple(dict.fromkeys(x.strip() for x in inputs))))
    ids = [s.id for s in steps]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise PlanError(f"step ids {dupes} are used more than once: ids must be unique")
    reused = sorted(set(ids) & (done | taken))
    if reused:
        raise PlanError(f"step ids {reused} belong to steps of this run already: give new steps new ids")
    for s in steps:
        if s.id in s.inputs:
            raise PlanError(f"step {s.id!r} lists itself as an input: remove it")
        unknown = [x for x in s.inputs if x not in ids and x not in done]
        if unknown:
            raise PlanError(f"step {s.id!r} has inputs {unknown} that are not steps of this plan; ids are {ids}")
    levels = _levels(steps, done)
    depth = 1 + max(levels.values())
    if depth > max_depth:
        raise PlanError(f"the plan is {depth} steps deep; at most {max_depth} are allowed: run more steps in parallel")
    return Plan(tuple(steps), levels)


def _levels(steps: list[Step], done: frozenset[str] = frozenset()) -> dict[str, int]:
    """Topological levels (Kahn); a cycle raises PlanError naming its steps."""
    pending = {s.id: set(s.inputs) - done for s in steps}
    levels: dict[str, int] = {}
    level = 0
    while pending:
        ready = [sid for sid, deps in pending.items() if deps <= levels.keys()]
        if not ready:
            raise PlanError(
                f"steps {sorted(pending)} depend on each other in a cycle: a step can only use earlier results"
            )
        for sid in ready:
            levels[sid] = level
            del pending[sid]
        level += 1
    return levels


def single_step_plan(task: str, agent: str, step_id: str = "s1") -> Plan:
    """The fallback when no valid plan came: one agent does the whole task."""
    return Plan((Step(step_id, agent, task),), {step_id: 0})
