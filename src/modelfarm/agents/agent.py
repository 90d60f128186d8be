"""One agent doing one step: tools first, then its model answers the instruction.

Small local models are poor at free-form tool calling, so a step is a fixed sequence:
1. each of the agent's tools is called once: with the arguments the operator fixed in
   `tool_args` if those are all it needs, else the model fills in the rest as JSON that must
   match the tool's parameter schema (constrained decoding where the backend has it);
2. the model gets its system prompt, the instruction, the results of the steps it depends on
   and the tool outputs, and writes the step's result.
Inputs and tool outputs are cut to fit the model's context (about 3 characters a token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modelfarm.agents.calls import ModelCaller, Reply
from modelfarm.agents.plan import Step
from modelfarm.agents.tools import Tool, ToolBox
from modelfarm.errors import ToolError
from modelfarm.manifest import AgentSpec, Manifest

_CHARS_PER_TOKEN = 3
_DEFAULT_CONTEXT = 4096


@dataclass(slots=True)
class StepWork:
    """What one try of a step produced."""

    output: str = ""
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    requests: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)

    def add(self, reply: Reply) -> None:
        self.model = reply.model
        self.tokens_in += reply.tokens_in
        self.tokens_out += reply.tokens_out
        self.cost += reply.cost
        self.requests.append(reply.request_id)


class AgentRunner:
    def __init__(self, manifest: Manifest, caller: ModelCaller, toolbox: ToolBox | None) -> None:
        self.manifest = manifest
        self.caller = caller
        self.toolbox = toolbox
        self._tools: dict[str, dict[str, Tool]] = {}

    def tools_of(self, agent: AgentSpec) -> dict[str, Tool]:
        """The agent's tools, resolved once (unknown names raise ConfigError)."""
        if agent.name not in self._tools:
            if agent.tools and self.toolbox is None:
                raise ToolError(f"agent {agent.name!r} has tools but the farm has no [orchestration] workspace")
            self._tools[agent.name] = self.toolbox.resolve(agent.tools) if self.toolbox and agent.tools else {}
        return self._tools[agent.name]

    def budget(self, model: str, max_tokens: int) -> int:
        """Characters of inputs and tool output that fit next to the instruction and answer."""
        spec = self.manifest.model(model)
        context = spec.context_length if spec is not None else _DEFAULT_CONTEXT
        return max(600, (context - max_tokens - 256) * _CHARS_PER_TOKEN)

    async def run(self, agent: AgentSpec, step: Step, inputs: dict[str, tuple[str, str]], model: str) -> StepWork:
        """One try of `step` on `model`. `inputs`: step id -> (agent, output) of its inputs."""
        work = StepWork(model=model)
        budget = self.budget(model, agent.max_tokens)
        context = _blocks([(f"Result of step {sid} ({who})", text) for sid, (who, text) in inputs.items()], budget)
        tool_blocks: list[tuple[str, str]] = []
        for name, tool in self.tools_of(agent).items():
            args = await self._tool_args(agent, tool, step, context, model, work)
            assert self.toolbox is not None
            try:
                out = await self.toolbox.call(name, args)
            except ToolError as exc:
                work.tools.append({"name": name, "args": args, "ok": False, "error": exc.message})
                raise
            work.tools.append({"name": name, "args": args, "ok": True, "chars": len(out)})
            tool_blocks.append((f"Output of tool {name}", out))
        room = max(600, budget - len(context))
        body = "\n\n".join(p for p in (context, _blocks(tool_blocks, room)) if p)
        system = f"You are the {agent.name} agent: {agent.description}"
        # The data first, then the agent's own instructions and the step's, last: small models
        # follow what they read last, and copy a long block that follows the question.
        how = f"{agent.system.strip()}\n" if agent.system.strip() else ""
        user = f"{body}\n\n{how}Your task: {step.instruction}" if body else f"{how}Your task: {step.instruction}"
        reply = await self.caller(
            model,
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=agent.max_tokens,
            frequency_penalty=self.manifest.orchestration.frequency_penalty,
        )
        work.add(reply)
        work.output = reply.text.strip()
        return work

    async def _tool_args(
        self, agent: AgentSpec, tool: Tool, step: Step, context: str, model: str, work: StepWork
    ) -> dict[str, Any]:
        fixed = dict(agent.tool_args.get(tool.name, {}))
        props: dict[str, Any] = dict(tool.parameters.get("properties", {}))
        missing = [r for r in tool.parameters.get("required", []) if r not in fixed]
        if not missing:
            return fixed
        schema = {
            "type": "object",
            "properties": {k: v for k, v in props.items() if k not in fixed},
            "required": missing,
            "additionalProperties": False,
        }
        if "$defs" in tool.parameters:
            schema["$defs"] = tool.parameters["$defs"]
        prompt = (
            f"Task: {step.instruction}\n\n{context[:2000]}\n\n"
            f"Give the arguments for the tool `{tool.name}` ({tool.description}) as one JSON object "
            f"matching this schema: {json.dumps(schema)}"
        )
        reply = await self.caller(
            model,
            [
                {"role": "system", "content": "You answer with one JSON object only."},
                {"role": "user", "content": prompt},
            ],
            max_tokens=256,
            response_format={"type": "json_schema", "json_schema": {"name": tool.name, "schema": schema}},
        )
        work.add(reply)
        try:
            chosen = json.loads(reply.text[reply.text.find("{") : reply.text.rfind("}") + 1])
        except ValueError as exc:
            raise ToolError(f"model {reply.model!r} gave no JSON arguments for tool {tool.name!r}") from exc
        if not isinstance(chosen, dict):
            raise ToolError(f"model {reply.model!r} gave no JSON object of arguments for tool {tool.name!r}")
        return {**chosen, **fixed}


def _blocks(blocks: list[tuple[str, str]], budget: int) -> str:
    """Titled text blocks, each cut to an equal share of `budget` characters."""
    if not blocks:
        return ""
    share = max(200, budget // len(blocks))
    parts = []
    for title, text in blocks:
        if len(text) > share:
            text = text[:share] + f"\n[... {len(text) - share} more characters cut]"
        parts.append(f"{title}:\n{text}")
    return "\n\n".join(parts)
