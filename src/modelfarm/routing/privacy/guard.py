"""The privacy guard: finds personal data and secrets in a request, and redacts them reversibly.

A hard rule of the router, not a score: any finding keeps the request on models cleared for
its data, or sends redacted messages elsewhere (see `routing/router.py`).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from modelfarm.errors import ConfigError
from modelfarm.routing.privacy.findings import Finding, merge_overlapping
from modelfarm.routing.privacy.redact import Redaction, redact
from modelfarm.routing.privacy.vocab import is_title_or_particle
from modelfarm.types import Message

if TYPE_CHECKING:
    from modelfarm.routing.privacy.detect import Detector


class PrivacyModelError(ConfigError):
    """presidio, spaCy or the spaCy model the privacy guard needs is not installed."""

    code = "privacy_model_missing"


class PrivacyGuard:
    """Scans messages for the kinds in `KINDS`; redacts and restores them.

    `ner=False` skips spaCy's named-entity model (no model file needed, 3-8x faster) and finds
    names only after cues such as "Mr." or "my name is". Loading takes a few seconds and happens
    on the first `scan`, or earlier with `load()`; nothing is loaded at construction.
    """

    def __init__(self, *, ner: bool = True, min_score: float = 0.5) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {min_score}")
        self.ner = ner
        self.min_score = min_score
        self._detector: Detector | None = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        """Import presidio and spaCy and load the model. Idempotent and thread-safe.

        Raises `PrivacyModelError` (a `ConfigError`) when the spaCy model is not installed.
        """
        with self._load_lock:
            if self._detector is None:
                try:
                    from modelfarm.routing.privacy.detect import Detector
                except ImportError as exc:
                    raise PrivacyModelError(
                        f"the privacy guard cannot import {exc.name!r}: install modelfarm's dependencies "
                        "(`pip install presidio-analyzer spacy phonenumbers tldextract`)"
                    ) from exc
                self._detector = Detector(ner=self.ner, min_score=self.min_score)

    def scan(self, messages: list[Message]) -> list[Finding]:
        """Every finding in `messages`, sorted by (message, start), overlaps merged."""
        if self._detector is None:
            self.load()
        assert self._detector is not None
        found = [
            Finding(kind, index, start, end, score)
            for index, message in enumerate(messages)
            for kind, start, end, score in self._detector.find(message.content)
        ]
        return merge_overlapping(found + _repeats(messages, merge_overlapping(found)))

    def redact(self, messages: list[Message], findings: list[Finding]) -> tuple[list[Message], Redaction]:
        """The messages with every found value replaced by its placeholder, and how to undo it."""
        return redact(messages, findings)


def _repeats(messages: list[Message], findings: list[Finding]) -> list[Finding]:
    """Other occurrences of found values, which a recognizer may miss out of context.

    NER tags "Maria Keller" in "I am Maria Keller" but may not tag "Keller" in "Keller's
    results"; a phone number found next to "call" is as private in a later turn without it.
    Parts of a multi-word name count as values of their own.
    """
    values: dict[str, tuple[str, float]] = {}
    for f in findings:
        value = messages[f.message].content[f.start : f.end]
        values.setdefault(value, (f.kind, f.score))
        if f.kind == "PERSON":
            for part in re.split(r"[\s,]+", value):
                part = part.strip(".")
                if len(part) >= 2 and part[0].isupper() and not is_title_or_particle(part):
                    values.setdefault(part, (f.kind, f.score))
    if not values:
        return []
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    repeats: list[Finding] = []
    for index, message in enumerate(messages):
        for m in pattern.finditer(message.content):
            kind, score = values[m.group()]
            repeats.append(Finding(kind, index, m.start(), m.end(), score))
    return repeats
