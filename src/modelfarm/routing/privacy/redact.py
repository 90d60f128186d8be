"""Reversible redaction: values become `<KIND_N>` placeholders, and answers get them back.

One value gets one placeholder across the whole request (every message), numbered per kind
in order of first appearance, so a model can still tell "<PERSON_1> wrote to <PERSON_2>"
apart. Every occurrence of a found value is replaced, not only the spans the recognizers
reported: a value found once in the system prompt must not leak from the third user turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelfarm.routing.privacy.findings import Finding, specificity
from modelfarm.types import Message


@dataclass(slots=True)
class Redaction:
    """The placeholders of one request and the originals they stand for."""

    placeholders: dict[str, str] = field(default_factory=dict, repr=False)
    """"<PERSON_1>" -> the original text. Hidden from repr: the originals must not reach a log."""

    def __repr__(self) -> str:
        return f"Redaction({len(self.placeholders)} placeholders: {', '.join(self.placeholders)})"

    def restore(self, text: str) -> str:
        """Put the originals back into a model's answer."""
        if not self.placeholders:
            return text
        return _placeholder_pattern(self.placeholders).sub(lambda m: self.placeholders[m.group()], text)

    def stream(self) -> StreamRestorer:
        """A restorer for a streamed answer, where a placeholder may arrive split over chunks."""
        return StreamRestorer(self.placeholders)


class StreamRestorer:
    """Restores placeholders in a stream of text chunks.

    `feed` returns what is safe to emit now: everything except a tail that may still grow into
    a placeholder ("<PER" could become "<PERSON_1>"). `flush` returns that tail at the end.
    """

    def __init__(self, placeholders: dict[str, str]) -> None:
        self._placeholders = placeholders
        self._pattern = _placeholder_pattern(placeholders) if placeholders else None
        # Every proper prefix of a placeholder: a tail that must wait for the next chunk.
        self._prefixes = {p[:i] for p in placeholders for i in range(1, len(p))}
        self._longest = max((len(p) for p in placeholders), default=0)
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk
        cut = self._hold_from(text)
        self._pending = text[cut:]
        return self._restore(text[:cut])

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return self._restore(text)

    def _hold_from(self, text: str) -> int:
        """Index of the earliest tail that is a proper prefix of a placeholder, else len(text)."""
        i = text.find("<", max(0, len(text) - self._longest + 1))
        while i != -1:
            if text[i:] in self._prefixes:
                return i
            i = text.find("<", i + 1)
        return len(text)

    def _restore(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self._placeholders[m.group()], text)


def _placeholder_pattern(placeholders: Iterable[str]) -> re.Pattern[str]:
    # Longest first, so "<PERSON_10>" is never read as "<PERSON_1>" plus "0>" (the ">" already
    # prevents that, but the order keeps the alternation correct for any placeholder shape).
    return re.compile("|".join(re.escape(p) for p in sorted(placeholders, key=len, reverse=True)))


def redact(messages: list[Message], findings: list[Finding]) -> tuple[list[Message], Redaction]:
    """Replace each finding (and every other occurrence of its value) with its placeholder."""
    kind_of: dict[str, str] = {}
    for f in sorted(findings, key=lambda f: specificity(f.kind)):
        value = messages[f.message].content[f.start : f.end]
        if value.strip():
            kind_of.setdefault(value, f.kind)
    if not kind_of:
        return list(messages), Redaction()
    occurrences = _occurrence_pattern(kind_of)

    spans_by_message: dict[int, list[tuple[int, int, str]]] = {}
    for f in findings:
        spans_by_message.setdefault(f.message, []).append((f.start, f.end, f.kind))
    for index, message in enumerate(messages):
        for m in occurrences.finditer(message.content):
            spans_by_message.setdefault(index, []).append((m.start(), m.end(), kind_of[m.group()]))

    redaction = Redaction()
    by_value: dict[str, str] = {}
    counters: dict[str, int] = {}
    out: list[Message] = []
    for index, message in enumerate(messages):
        text = message.content
        pieces: list[str] = []
        cursor = 0
        for start, end, kind in _union(spans_by_message.get(index, [])):
            value = text[start:end]
            placeholder = by_value.get(value)
            if placeholder is None:
                counters[kind] = counters.get(kind, 0) + 1
                placeholder = f"<{kind}_{counters[kind]}>"
                by_value[value] = placeholder
                redaction.placeholders[placeholder] = value
            pieces.append(text[cursor:start])
            pieces.append(placeholder)
            cursor = end
        pieces.append(text[cursor:])
        out.append(Message(message.role, "".join(pieces)))
    return out, redaction


def _occurrence_pattern(values: Iterable[str]) -> re.Pattern[str]:
    # Whole-word occurrences only: the value "Ann" must not eat the middle of "Annual".
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _union(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Merge overlapping spans; a merged span keeps the most specific kind of its parts."""
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            best = kind if specificity(kind) < specificity(last_kind) else last_kind
            merged[-1] = (last_start, max(last_end, end), best)
        else:
            merged.append((start, end, kind))
    return merged
