"""What flows through a sense pipeline: inputs from sources, and the events processors emit.

One clock: `source_time` is seconds from the start of the stream (the first frame, sample
or line is 0.0), the same for video, audio and text, so rules can compare them; `emitted_at`
is the wall-clock time (time.time()) when a processor produced the event, so latency from
source to alert can be measured.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Modality = Literal["video", "audio", "text"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One video frame: BGR uint8 (H, W, 3), as OpenCV reads it."""

    image: np.ndarray
    source_time: float
    index: int
    arrived_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono float32 samples in [-1, 1] at `rate` Hz (16 kHz), starting at `source_time`."""

    samples: np.ndarray
    source_time: float
    rate: int = 16_000
    arrived_at: float = field(default_factory=time.time)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True, slots=True)
class TextItem:
    """A line of text (a nurse's note, a message) at `source_time`."""

    text: str
    source_time: float
    author: str | None = None
    arrived_at: float = field(default_factory=time.time)


SourceItem = Frame | AudioChunk | TextItem


@dataclass(frozen=True, slots=True)
class SenseEvent:
    """A typed, timestamped observation.

    `kind` names the signal that rules refer to: a reading ("spo2", "hr", "breathing_rate",
    "people"), a detection ("siren", "voice", "face"), or text ("speech", "note", "keyword").
    Readings carry `value` (and `unit`); text events carry `text`; `data` holds the rest
    (a bounding box, a confidence, the raw OCR string)."""

    kind: str
    source_time: float
    processor: str
    value: float | None = None
    unit: str | None = None
    text: str | None = None
    confidence: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    emitted_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None and v != {}}


Severity = Literal["info", "warning", "critical"]


@dataclass(slots=True)
class Alert:
    """A fusion rule fired: one per episode (hysteresis keeps a lasting condition to one alert)."""

    id: str
    pipeline: str
    rule: str
    severity: Severity
    source_time: float
    """Stream time at which the rule's condition became true."""
    emitted_at: float
    """Wall-clock time (time.time()) when the alert was raised."""
    message: str
    evidence: list[SenseEvent] = field(default_factory=list)
    explanation: str | None = None
    """Filled in later by a model, if the rule asks for one; the alert never waits for it."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "rule": self.rule,
            "severity": self.severity,
            "source_time": round(self.source_time, 3),
            "emitted_at": self.emitted_at,
            "message": self.message,
            "evidence": [e.as_dict() for e in self.evidence],
            "explanation": self.explanation,
        }
