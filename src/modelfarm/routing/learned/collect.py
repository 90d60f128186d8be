"""Outcomes of your own farm: run every model on graded prompts, write the outcomes CSV a router
trains on (`modelfarm router collect`).

Graded prompts are JSON lines: `{"prompt": "...", "answer": "29"}` (or a list of accepted
answers; optional `id` and `group`). An answer is graded the way GSM8K and short-answer sets are:

- a number: the *last* number in the model's reply must equal it (working may come before it);
- anything else: it must appear in the reply as a whole word or phrase, case-insensitive.

Every model answers greedily (temperature 0, a fixed seed), so a run repeats. Rows are appended
to the CSV as soon as every model has answered the prompt; a run that stops (Ctrl-C, a crash)
keeps what it wrote, and the next run with the same `--out` skips prompts already there.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelfarm.models.pool import Pool
from modelfarm.routing.learned.outcomes import SCORE, OutcomesError
from modelfarm.types import ChatRequest, Message

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
SEED = 7


@dataclass(frozen=True)
class GradedPrompt:
    id: str
    group: str
    prompt: str
    answers: tuple[str, ...]


def read_graded(path: Path) -> list[GradedPrompt]:
    """Graded prompts from a JSON-lines file; errors name the line and the fix."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OutcomesError(f"cannot read {path}: {exc.strerror}") from exc
    out: list[GradedPrompt] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OutcomesError(f"{where}: not JSON ({exc.msg}); write one object per line") from exc
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise OutcomesError(f'{where}: needs a non-empty "prompt" string')
        raw = item.get("answer")
        answers = [raw] if isinstance(raw, str | int | float) else raw
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str | int | float) for a in answers):
            raise OutcomesError(f'{where}: needs "answer": a string or number, or a list of them')
        row_id = str(item.get("id", number))
        if row_id in seen:
            raise OutcomesError(f"{where}: id {row_id!r} is used twice; ids must be unique")
        seen.add(row_id)
        out.append(GradedPrompt(row_id, str(item.get("group", row_id)), item["prompt"], tuple(str(a) for a in answers)))
    if not out:
        raise OutcomesError(f"{path} has no prompts")
    return out


def _is_number(value: str) -> bool:
    return _NUMBER.fullmatch(value.strip().replace(",", "")) is not None


def grade(answers: Sequence[str], reply: str) -> float:
    """1.0 if the reply gives one of the answers (see the module docstring), else 0.0."""
    text = reply.lower()
    for answer in answers:
        if _is_number(answer):
            numbers = _NUMBER.findall(text.replace(",", ""))
            if numbers and float(numbers[-1]) == float(answer.replace(",", "")):
                return 1.0
        elif re.search(rf"(?<!\w){re.escape(answer.strip().lower())}(?!\w)", text):
            return 1.0
    return 0.0


def _done(out: Path, models: Sequence[str]) -> set[str]:
    """Ids already in `out`; the file must score the same models."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        wanted = [f"{SCORE}{m}" for m in models]
        have = [c for c in reader.fieldnames or [] if c.startswith(SCORE)]
        if have != wanted:
            raise OutcomesError(
                f"{out} already scores {', '.join(h[len(SCORE) :] for h in have) or 'nothing'}, not "
                f"{', '.join(models)}: pick another --out, or the same --models to resume"
            )
        return {row["id"] for row in reader}


async def collect(
    pool: Pool,
    models: Sequence[str],
    prompts: Sequence[GradedPrompt],
    out: Path,
    *,
    max_tokens: int = 160,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Answer every prompt with every model, grade, append rows to `out`; returns rows written.

    Prompts whose id is already in `out` are skipped (resuming a stopped run)."""
    done = _done(out, models)
    todo = [p for p in prompts if p.id not in done]
    new_file = not out.exists() or out.stat().st_size == 0
    written = 0
    with out.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["id", "group", "prompt", *(f"{SCORE}{m}" for m in models)])
        if progress is not None and done:
            progress(len(prompts) - len(todo))
        for item in todo:
            request = ChatRequest([Message("user", item.prompt)], max_tokens=max_tokens, temperature=0, seed=SEED)
            scores = []
            for name in models:
                async with pool.lease(name) as backend:
                    result = await backend.chat(request)
                scores.append(grade(item.answers, result.text))
            writer.writerow([item.id, item.group, item.prompt, *(f"{s:g}" for s in scores)])
            handle.flush()  # a stopped run keeps every finished row
            written += 1
            if progress is not None:
                progress(1)
    return written
