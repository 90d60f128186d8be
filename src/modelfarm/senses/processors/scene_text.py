"""Text in the scene: road signs (STOP, SPEED LIMIT 50, YIELD) read off whole video frames.

Unlike a monitor, a street has no fixed layout to cache: every frame this processor is given
goes through a full rapidocr pass, detection then recognition (~0.3-0.6 s a 640x480 frame on
2 cores), so a pipeline gives it one frame a second (`every = 1.0`). Lines read with less than
`min_confidence` are dropped; lines stacked on one sign ("SPEED" / "LIMIT" / "30") are joined
top to bottom into one text, normalised to upper case with punctuation removed. With `words`
configured, only texts holding one of them (or a plain number) are kept; a word read with
OCR's usual slips (0 for O, 1 or L for I, a lost space: "ST0P", "SPEEDLIMIT") is written back
as configured, so a rule's `sign contains "SPEED LIMIT"` finds it. A speed limit ("50",
"SPEED LIMIT 50", "50 KM/H": a multiple of 5 from 5 to 150) also carries its number as `value`.
With `on_change` (the default) the same text is not emitted again for `repeat_after` seconds
of stream time, so a sign in view for 15 s is one event, or two, not fifteen.

    frames -> SceneText -> SenseEvent(kind="sign", text="SPEED LIMIT 30", value=30.0, data={"box": [x, y, w, h]})
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Frame, Modality, SenseEvent, SourceItem
from modelfarm.senses.processors.ocr import Box, RapidOcrReader, TextReader, Word, normalize_value

__all__ = ["SceneText", "normalise_sign", "speed_limit"]

_SPEED_LIMIT = re.compile(r"(?:SPEED LIMIT )?(\d{1,3})(?: ?(?:KM/?H|KPH|MPH))?")
_NUMBER_SLIPS = re.compile(r"(?<![A-Z0-9])(?=[0-9OI]*[0-9])[0-9OI]+(?![A-Z0-9])")
"""A number read with a letter or two for digits ("3O", "I5"): at least one real digit."""
_CANONICAL = ("SPEED LIMIT",)
"""Phrases always written back as spelt here: the speed-limit parse depends on them."""
_CONFUSABLE = {"O": "O0Q", "0": "0O", "I": "I1L", "L": "L1I", "1": "1IL", "S": "S5", "5": "5S", "B": "B8", "8": "8B"}
"""Characters OCR mistakes for one another in sign fonts (after upper-casing)."""


def normalise_sign(text: str) -> str:
    """Upper case, only letters, digits and "/" ("KM/H"), single spaces: "Stop!" -> "STOP"."""
    return " ".join(re.sub(r"[^A-Z0-9/]+", " ", text.upper()).split())


def speed_limit(text: str) -> float | None:
    """The number on a speed-limit sign ("50", "SPEED LIMIT 50", "50 KM/H"), or None when `text`
    is not one: road speed limits are multiples of 5 from 5 to 150."""
    match = _SPEED_LIMIT.fullmatch(text)
    if match is None:
        return None
    number = int(match.group(1))
    return float(number) if 5 <= number <= 150 and number % 5 == 0 else None


def _tolerant(word: str) -> re.Pattern[str]:
    """A regex finding `word` in normalised OCR text despite confusable characters and lost or
    extra spaces ("SPEED LIMIT" matches "SPEEDLIMIT" and "SPEED L1MIT"), on word boundaries."""
    chars = [re.escape(c) if c not in _CONFUSABLE else f"[{re.escape(_CONFUSABLE[c])}]" for c in word.replace(" ", "")]
    return re.compile(r"(?<![A-Z0-9])" + " ?".join(chars) + r"(?![A-Z0-9])")


@dataclass(frozen=True, slots=True)
class _Line:
    """One detected line of text: its words joined, the least sure word's score, their box."""

    text: str
    score: float
    box: Box

    @classmethod
    def of(cls, words: Sequence[Word]) -> _Line:
        box = words[0].box
        for word in words[1:]:
            box = box.union(word.box)
        return cls(" ".join(w.text for w in words), min(w.score for w in words), box)


def _stacked(upper: Box, lower: Box) -> bool:
    """True when `lower` sits just under `upper` on the same sign: they share at least half the
    narrower one's width and the gap between them is under half the shorter one's height."""
    shared = min(upper.x1, lower.x1) - max(upper.x0, lower.x0)
    narrower = min(upper.x1 - upper.x0, lower.x1 - lower.x0)
    gap = lower.y0 - upper.y1
    return shared >= 0.5 * narrower and gap <= 0.5 * min(upper.height, lower.height)


def _signs(lines: Sequence[_Line]) -> list[list[_Line]]:
    """Lines grouped into signs: each line joins the sign whose lowest line it sits just under."""
    signs: list[list[_Line]] = []
    for line in sorted(lines, key=lambda x: (x.box.y0, x.box.x0)):
        home = next((sign for sign in signs if _stacked(sign[-1].box, line.box)), None)
        if home is None:
            signs.append([line])
        else:
            home.append(line)
    return signs


class SceneText:
    """A Processor reading sign text anywhere in video frames (see the module docstring)."""

    consumes: Modality = "video"
    emits: tuple[str, ...] = ("sign",)

    def __init__(
        self,
        *,
        name: str = "scene_text",
        words: Sequence[str] | None = None,
        min_confidence: float = 0.6,
        on_change: bool = True,
        repeat_after: float = 10.0,
        det_max_side: int | None = 960,
        threads: int | None = None,
        reader: TextReader | None = None,
    ) -> None:
        """`words`: keep only texts holding one of these (or a plain number); None keeps every
        text. `det_max_side`: detection sees the frame scaled down to this many pixels on its
        longer side (recognition reads the full-size crops); `threads`: onnxruntime's threads.
        `reader` replaces rapidocr (a test stand-in implementing TextReader)."""
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"{name}: min_confidence must be within 0..1, not {min_confidence}")
        if repeat_after < 0:
            raise ConfigError(f"{name}: repeat_after must be >= 0 seconds, not {repeat_after}")
        if isinstance(words, str):
            raise ConfigError(f'{name}: words is a list of texts, e.g. words = ["STOP", "SPEED LIMIT"], not {words!r}')
        self.name = name
        self.words = [normalise_sign(w) for w in words] if words is not None else None
        if self.words is not None and not all(self.words):
            raise ConfigError(f"{name}: words must hold letters or digits, got {list(words or [])}")
        self.min_confidence = min_confidence
        self.on_change = on_change
        self.repeat_after = repeat_after
        self.reader: TextReader = reader if reader is not None else RapidOcrReader(threads, det_max_side)
        # longest first, so "SPEED LIMIT" is written back before a configured "LIMIT" is looked for
        phrases = sorted({*(self.words or []), *_CANONICAL}, key=len, reverse=True)
        self._patterns = [(phrase, _tolerant(phrase)) for phrase in phrases]
        self._emitted: dict[str, float] = {}  # text -> stream time it was last emitted
        self._last_t = float("-inf")

    def process(self, item: SourceItem) -> list[SenseEvent]:
        if not isinstance(item, Frame):
            return []
        if item.source_time < self._last_t:  # the stream restarted: every sign is news again
            self._emitted.clear()
        self._last_t = item.source_time
        lines = [_Line.of(words) for words in self.reader.detect(item.image) if words]
        sure = [line for line in lines if line.score >= self.min_confidence]
        events = []
        for sign in _signs(sure):
            event = self._event(sign, item.source_time)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SenseEvent]:
        return []

    def _event(self, sign: list[_Line], source_time: float) -> SenseEvent | None:
        """The event for one sign's lines, or None when it is filtered out or was just emitted."""
        raw = " ".join(line.text for line in sign)
        text, matched = self._canonical(normalise_sign(raw))
        if not text:
            return None
        plain_number = text.isdigit() and len(text) <= 3
        if self.words is not None and not matched and not plain_number:
            return None
        if self.on_change:
            last = self._emitted.get(text)
            if last is not None and source_time - last < self.repeat_after:
                return None
            self._emitted[text] = source_time
        box = sign[0].box
        for line in sign[1:]:
            box = box.union(line.box)
        return SenseEvent(
            kind="sign",
            source_time=source_time,
            processor=self.name,
            value=speed_limit(text),
            text=text,
            confidence=round(min(line.score for line in sign), 4),
            data={"box": box.as_xywh(), "raw": raw},
        )

    def _canonical(self, text: str) -> tuple[str, bool]:
        """`text` with each configured word (and "SPEED LIMIT") written as configured wherever OCR
        read it with confusable characters or spaces, numbers with letters for digits written in
        digits, and whether a configured word was found."""
        matched = False
        for phrase, pattern in self._patterns:
            text, found = pattern.subn(phrase, text)
            matched = matched or (found > 0 and self.words is not None and phrase in self.words)
        text = _NUMBER_SLIPS.sub(lambda m: normalize_value(m.group(0)), text)  # "3O" -> "30"
        return " ".join(text.split()), matched
