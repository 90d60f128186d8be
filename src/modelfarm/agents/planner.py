"""The brain plans: the task and the agents' descriptions in, a checked DAG of steps out.

Constrained decoding where the backend has it (`response_format` with the plan's JSON schema:
a llama.cpp grammar locally, `response_format` upstream). An answer that fails `parse_plan` is
sent back once with the reason ("repaired"); if that fails too, one agent does the whole task
("fallback"). Every refused answer is kept in the trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelfarm.agents.calls import ModelCaller, Reply
from modelfarm.agents.plan import Plan, PlanError, parse_plan, plan_schema, single_step_plan
from modelfarm.manifest import AgentSpec, Orchestration

PLAN_MAX_TOKENS = 768

_SYSTEM = """You are the planner of a team of agents. Split the user's task into steps for the agents below.
Each step: a short unique "id" (s1, s2, ...), the "agent" that does it, an "instruction" saying exactly \
what that agent must do, and "inputs": the ids of earlier steps whose results it needs (empty if none).
Steps without a dependency between them run at the same time, so only list an input when the step \
really needs that result. Use at most {max_steps} steps. Answer with JSON only, in this form:
{{"steps": [{{"id": "s1", "agent": "NAME", "instruction": "...", "inputs": []}}, \
{{"id": "s2", "agent": "NAME", "instruction": "...", "inputs": ["s1"]}}]}}

Agents:
{agents}"""


@dataclass(slots=True)
class PlanResult:
    plan: Plan
    source: str
    """planned | repaired | fallback"""
    refused: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)


def describe(agents: list[AgentSpec]) -> str:
    lines = []
    for a in agents:
        tools = f" (tools: {', '.join(a.tools)})" if a.tools else ""
        lines.append(f"- {a.name}: {a.description}{tools}")
    return "\n".join(lines)


def pick_fallback_agent(task: str, agents: list[AgentSpec]) -> AgentSpec:
    """The agent whose description shares the most word stems with the task (the first on a tie)."""

    def stems(text: str) -> set[str]:
        return {w[:5] for w in re.findall(r"[a-z]{4,}", text.lower())}

    words = stems(task)
    return max(agents, key=lambda a: len(words & stems(f"{a.name} {a.description}")))


class Planner:
    def __init__(
        self,
        caller: ModelCaller,
        model: str,
        agents: list[AgentSpec],
        settings: Orchestration,
        *,
        constrained: bool = True,
    ) -> None:
        self.caller = caller
        self.model = model
        self.agents = agents
        self.settings = settings
        self.constrained = constrained

    def _messages(self, task: str, extra: str = "") -> list[dict[str, str]]:
        system = _SYSTEM.format(max_steps=self.settings.max_steps, agents=describe(self.agents))
        return [{"role": "system", "content": system}, {"role": "user", "content": f"Task: {task}{extra}"}]

    async def _ask(self, messages: list[dict[str, str]]) -> Reply:
        schema = plan_schema([a.name for a in self.agents], self.settings.max_steps)
        fmt = {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}} if self.constrained else None
        return await self.caller(self.model, messages, max_tokens=PLAN_MAX_TOKENS, response_format=fmt)

    def _check(self, text: str, done: frozenset[str], taken: frozenset[str]) -> Plan:
        names = [a.name for a in self.agents]
        s = self.settings
        return parse_plan(text, names, max_steps=s.max_steps, max_depth=s.max_depth, done=done, taken=taken)

    async def plan(
        self, task: str, *, context: str = "", done: frozenset[str] = frozenset(), taken: frozenset[str] = frozenset()
    ) -> PlanResult:
        """A valid plan for `task`, always (at worst the single-agent fallback).

        For a re-plan, `context` tells what is done and `done` lists the ids it may use as inputs."""
        messages = self._messages(task, context)
        result = PlanResult(single_step_plan(task, pick_fallback_agent(task, self.agents).name), "fallback")
        for attempt in ("planned", "repaired"):
            reply = await self._ask(messages)
            result.replies.append(reply)
            try:
                result.plan, result.source = self._check(reply.text, done, taken), attempt
                return result
            except PlanError as exc:
                result.refused.append({"answer": reply.text[:2000], "error": exc.message})
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text},
                    {
                        "role": "user",
                        "content": f"That plan is invalid: {exc.message}. Answer with the corrected JSON.",
                    },
                ]
        return result


def results_context(done: dict[str, tuple[str, str]], failed: dict[str, str]) -> str:
    """What a re-plan is told: the results so far and what failed."""
    parts = ["\n\nSteps already done (use their ids as inputs; do not repeat them):"]
    parts += [f"- {sid} ({agent}): {text[:300]}" for sid, (agent, text) in done.items()]
    parts += [f"- {sid} FAILED: {why}" for sid, why in failed.items()]
    parts.append("Plan only the remaining work, with new ids.")
    return "\n".join(parts)


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.as_dict())
