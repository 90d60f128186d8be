"""The brain merges the steps' results into one answer that says which step gave what.

Asked for free text, small models summarise the first result or two and drop the rest
(measured on the inbox example: a three-bullet answer that lost the phishing warning). So the
merge asks for JSON under a schema: a list of points, each naming the step it comes from, at
least one per result (constrained decoding where the backend has it). The points are rendered
as bullets ending in `[step id]`. A backend that refuses `response_format` gets the same
request as free text with citations in brackets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from modelfarm.agents.calls import ModelCaller, Reply
from modelfarm.agents.trace import StepTrace
from modelfarm.errors import InvalidRequestError

SYSTEM = "You are the brain of a team of agents: you write the final answer for the user from their results."
_ASK_JSON = (
    "Write the final answer to the task as a list of points, using only these results: at least one point for every "
    "result, each naming the id of the result it comes from in `step`. Keep every warning an agent raised "
    "(security, errors, deadlines)."
)
_ASK_TEXT = (
    "Write the final answer to the task as short bullet points, using only these results: at least one bullet for "
    "every result, and keep every warning an agent raised (security, errors, deadlines). End every bullet with the id "
    "of the result it uses, in brackets, for example [s2]."
)
_CITATION = re.compile(r"\[([A-Za-z0-9_,\s-]+)\]")


@dataclass(slots=True)
class Merged:
    answer: str
    sources: dict[str, list[str]]
    """Cited step id -> [agent, first words of its output]."""
    replies: list[Reply]


def _schema(ids: list[str]) -> dict[str, object]:
    return {
        "type": "object",
        "properties": {
            "points": {
                "type": "array",
                "minItems": len(ids),
                "maxItems": 3 * len(ids),
                "items": {
                    "type": "object",
                    "properties": {"step": {"type": "string", "enum": ids}, "point": {"type": "string"}},
                    "required": ["step", "point"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["points"],
        "additionalProperties": False,
    }


def _render(text: str, ids: list[str]) -> str | None:
    """Bullets from the JSON answer, or None when it is not the JSON asked for."""
    try:
        points = json.loads(text[text.find("{") : text.rfind("}") + 1])["points"]
        lines = [
            f"- {str(p['point']).strip()} [{p['step']}]" for p in points if p.get("step") in ids and p.get("point")
        ]
    except (ValueError, KeyError, TypeError):
        return None
    return "\n".join(lines) or None


async def merge(
    caller: ModelCaller,
    model: str,
    task: str,
    ok: list[StepTrace],
    others: list[StepTrace],
    *,
    share: int,
    max_tokens: int,
    frequency_penalty: float,
) -> Merged:
    """`ok`: steps with a result; `others`: failed, skipped or cancelled ones (named, so the
    answer can say what is missing); `share`: characters of each result that fit."""
    blocks = "\n\n".join(f"[{s.id}] from {s.agent}:\n{_cut(s.output, share)}" for s in ok)
    gaps = [f"- {s.id} ({s.agent}) {s.status}: {s.error or s.note}" for s in others]
    missing = ("\n\nSteps without a result:\n" + "\n".join(gaps)) if gaps else ""
    context = f"Task: {task}\n\nResults of the agents:\n\n{blocks}{missing}\n\n"
    ids = [s.id for s in ok]
    replies: list[Reply] = []
    answer: str | None = None
    try:
        reply = await caller(
            model,
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": context + _ASK_JSON}],
            max_tokens=max_tokens,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": _schema(ids)}},
        )
        replies.append(reply)
        answer = _render(reply.text, ids)
    except InvalidRequestError:  # the backend does not take response_format: ask for text
        pass
    if answer is None:
        reply = await caller(
            model,
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": context + _ASK_TEXT}],
            max_tokens=max_tokens,
            frequency_penalty=frequency_penalty,
        )
        replies.append(reply)
        answer = reply.text.strip()
    cited = {x.strip() for m in _CITATION.finditer(answer) for x in m.group(1).split(",")}
    sources = {s.id: [s.agent, s.output[:80]] for s in ok if s.id in cited}
    return Merged(answer, sources, replies)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} more characters cut]"
