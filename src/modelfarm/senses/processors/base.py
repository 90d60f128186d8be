"""The processor protocol: what a micro-model consumes and what it emits.

A processor is created once per pipeline (models load in `__init__` or lazily on first use)
and called from a worker thread, one input at a time, in source order; it returns the events
that input produced (often none). Processors keep whatever state they need between inputs
(a VAD's speech segment, a breathing envelope), and `flush()` returns the events still held
when the stream ends.
"""

from __future__ import annotations

from typing import Protocol

from modelfarm.senses.events import Modality, SenseEvent, SourceItem


class Processor(Protocol):
    name: str
    consumes: Modality
    emits: tuple[str, ...]
    """The event kinds it can produce (rules are checked against these)."""

    def process(self, item: SourceItem) -> list[SenseEvent]: ...

    def flush(self) -> list[SenseEvent]: ...
