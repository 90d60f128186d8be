"""Text: notes and messages become events: the text itself, readings with units, keywords, PII.

Readings are found by pattern ("SpO2 88%", "sats 88", "HR 130", "pulse 130 bpm", "RR 6",
"resp rate 6", "temp 38.5", "BP 90/60") and emitted under the same kinds the monitor's OCR
uses (spo2, hr, rr, temp, bp_sys, bp_dia), so one rule covers a reading whether a camera saw it
or a nurse typed it. Keywords are matched on normalised text (case, punctuation, apostrophes).
With `pii = true` the router's privacy guard scans each line and a `pii` event names the kinds
found, never the values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelfarm.senses.events import Modality, SenseEvent, SourceItem, TextItem
from modelfarm.senses.rules import normalise_text

if TYPE_CHECKING:
    from modelfarm.routing.privacy import PrivacyGuard

_NUM = r"(\d{1,3}(?:[.,]\d)?)"
_SEP = r"\s*(?:is|was|of|at|now|down to|up to|[:=])?\s*"
_READINGS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("spo2", "%", re.compile(rf"\b(?:spo2|sp02|sats?|o2 sat(?:uration)?|oxygen saturation){_SEP}{_NUM}\s*%?", re.I)),
    ("hr", "bpm", re.compile(rf"\b(?:hr|heart rate|pulse){_SEP}{_NUM}\s*(?:bpm|/min)?", re.I)),
    ("rr", "/min", re.compile(rf"\b(?:rr|resp(?:iratory)? rate|breathing rate|resps?){_SEP}{_NUM}", re.I)),
    ("temp", "°C", re.compile(rf"\b(?:temp(?:erature)?){_SEP}{_NUM}\s*(?:°\s*c|c\b|degrees)?", re.I)),
)
_BP = re.compile(r"\b(?:bp|nibp|blood pressure)\s*(?:is|was|of|at|[:=])?\s*(\d{2,3})\s*/\s*(\d{2,3})", re.I)
_RANGES = {
    "spo2": (50, 100),
    "hr": (20, 250),
    "rr": (2, 60),
    "temp": (30, 43),
    "bp_sys": (50, 260),
    "bp_dia": (20, 160),
}


@dataclass(slots=True)
class TextProcessor:
    name: str = "text"
    kind: str = "note"
    """The kind of the text event itself (rules: `note contains "..."`)."""
    keywords: list[str] = field(default_factory=list)
    readings: bool = True
    pii: bool = False
    pii_ner: bool = True
    consumes: Modality = "text"
    emits: tuple[str, ...] = ()
    _guard: PrivacyGuard | None = None

    def __post_init__(self) -> None:
        kinds = [self.kind, "keyword"]
        if self.readings:
            kinds += [*(k for k, _, _ in _READINGS), "bp_sys", "bp_dia"]
        if self.pii:
            kinds.append("pii")
        self.emits = tuple(kinds)

    def process(self, item: SourceItem) -> list[SenseEvent]:
        if not isinstance(item, TextItem):
            return []
        t, text = item.source_time, item.text
        out = [SenseEvent(self.kind, t, self.name, text=text, data={"author": item.author} if item.author else {})]
        if self.readings:
            out += self._readings(t, text)
        plain = normalise_text(text)
        for word in self.keywords:
            if re.search(rf"(?<![\w']){re.escape(normalise_text(word))}(?![\w'])", plain):
                out.append(SenseEvent("keyword", t, self.name, text=word))
        if self.pii:
            out += self._pii(t, text)
        return out

    def flush(self) -> list[SenseEvent]:
        return []

    def _readings(self, t: float, text: str) -> list[SenseEvent]:
        out = []
        for kind, unit, pattern in _READINGS:
            for m in pattern.finditer(text):
                value = float(m.group(1).replace(",", "."))
                if _plausible(kind, value):
                    out.append(SenseEvent(kind, t, self.name, value=value, unit=unit, data={"raw": m.group(0)}))
        for m in _BP.finditer(text):
            sys_, dia = float(m.group(1)), float(m.group(2))
            if _plausible("bp_sys", sys_) and _plausible("bp_dia", dia):
                out.append(SenseEvent("bp_sys", t, self.name, value=sys_, unit="mmHg", data={"raw": m.group(0)}))
                out.append(SenseEvent("bp_dia", t, self.name, value=dia, unit="mmHg", data={"raw": m.group(0)}))
        return out

    def _pii(self, t: float, text: str) -> list[SenseEvent]:
        from modelfarm.routing.privacy import PrivacyGuard
        from modelfarm.types import Message

        if self._guard is None:
            self._guard = PrivacyGuard(ner=self.pii_ner)
        kinds = sorted({f.kind for f in self._guard.scan([Message("user", text)])})
        return [SenseEvent("pii", t, self.name, value=float(len(kinds)), data={"kinds": kinds})] if kinds else []


def _plausible(kind: str, value: float) -> bool:
    low, high = _RANGES.get(kind, (float("-inf"), float("inf")))
    return low <= value <= high
