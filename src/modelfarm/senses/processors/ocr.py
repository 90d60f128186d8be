"""Read a vital-signs monitor: find the layout once, then read only the value crops.

A full OCR pass (text detection + recognition, ~1 s a 640x480 frame on 2 cores) finds each
field's label ("SpO2") and the value next to it (the number to the right of or below the
label, or in the same text: "HR 72"). The value's box is cached, widened into the blank
background around it so a value that grows a digit still fits; every later frame runs
recognition alone on those crops (~30 ms each). The full pass runs again when a crop fails to
parse `max_failures` times in a row, every `relocate_every` seconds of stream time, and every
`missing_retry_every` seconds while a label is seen without a value (a monitor showing "--").
A crop whose pixels have not changed since it was last read is not read again: the monitor
redraws its numbers about once a second, the camera sends several frames a second.

Here: the fields and how their text parses, the TextReader protocol over rapidocr, and the
MonitorOcr processor. Finding the layout (pairing labels with values, fitting the value crops
to the screen's ink) is `ocr_layout`.

    frames -> MonitorOcr -> SenseEvent(kind="spo2", value=97.0, unit="%", data={"raw": "97"})
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Frame, Modality, SenseEvent, SourceItem

if TYPE_CHECKING:
    from rapidocr import RapidOCR

__all__ = ["Box", "MonitorOcr", "OcrField", "OcrStats", "RapidOcrReader", "TextReader", "Word", "default_fields"]


@dataclass(frozen=True, slots=True)
class OcrField:
    """One reading on the monitor: its labels, unit, how to parse it and its plausible range.

    `pattern` is a regex searched in the value text; each capture group is one number (no group:
    the whole match is the number). With several groups, `parts` names them and each becomes its
    own event kind: "bp" with parts ("sys", "dia") emits "bp_sys" and "bp_dia". A value outside
    [`min`, `max`] is an OCR error (a lost decimal point, a stray digit) and is not emitted."""

    name: str
    labels: list[str]
    unit: str
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            groups = re.compile(self.regex).groups
        except re.error as exc:
            raise ConfigError(f"OCR field {self.name!r}: pattern {self.pattern!r} is not a regex: {exc}") from exc
        if max(groups, 1) != max(len(self.parts), 1):
            raise ConfigError(
                f"OCR field {self.name!r}: pattern has {groups} groups but parts names {len(self.parts)}; "
                "give one part name per group"
            )
        if not self.labels:
            raise ConfigError(f"OCR field {self.name!r}: give at least one label")

    @property
    def regex(self) -> str:
        """The pattern used: the configured one, or a plain decimal number."""
        return self.pattern or r"(\d+(?:\.\d+)?)"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The event kinds this field emits, one per part."""
        return tuple(f"{self.name}_{part}" for part in self.parts) or (self.name,)

    def parse(self, text: str) -> tuple[float, ...] | None:
        """The numbers in OCR'd `text` (a leading label is skipped), or None if unreadable or implausible."""
        match = re.search(self.regex, normalize_value(strip_label(text, self.labels)))
        if match is None:
            return None
        numbers = tuple(float(g) for g in (match.groups() or (match.group(0),)))
        low = -np.inf if self.min is None else self.min
        high = np.inf if self.max is None else self.max
        return numbers if all(low <= n <= high for n in numbers) else None


def default_fields() -> list[OcrField]:
    """HR, SpO2, NIBP, RR and temperature, with the ranges a living adult can show."""
    return [
        OcrField("hr", ["HR", "PULSE"], "bpm", min=20, max=300),
        OcrField("spo2", ["SpO2", "SPO2", "Sp02"], "%", min=50, max=100),
        OcrField(
            "bp", ["NIBP", "BP", "ABP"], "mmHg", r"(\d{2,3})\s*/\s*(\d{2,3})", min=20, max=300, parts=("sys", "dia")
        ),
        OcrField("rr", ["RR", "RESP"], "breaths/min", min=2, max=80),
        OcrField("temp", ["TEMP", "T1"], "°C", min=25, max=45),
    ]


# --- text normalisation ----------------------------------------------------------------------

_LABEL_CONFUSIONS = str.maketrans({"0": "O", "1": "I", "L": "I", "|": "I"})
_VALUE_CONFUSIONS = str.maketrans({"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "i": "1", "|": "1", ",": "."})
_BLANK = re.compile(r"[-_=\s/\u2013\u2014\u2212\u30fc\u4e00\uff0d]*")
"""What a blank value reads as: hyphens, underscores, dashes (the recogniser also knows Chinese: "一")."""


def label_key(text: str) -> str:
    """A label as OCR may read it: case, O/0 and I/l/1 confusions removed ("Sp02" -> "SPO2")."""
    return re.sub(r"[^A-Z0-9|]", "", text.upper()).translate(_LABEL_CONFUSIONS)


def normalize_value(text: str) -> str:
    """Digits as OCR confuses them (O->0, l->1, "," decimal) with spaces around "." and "/" closed."""
    return re.sub(r"\s*([./])\s*", r"\1", text.translate(_VALUE_CONFUSIONS))


def strip_label(text: str, labels: Sequence[str]) -> str:
    """`text` without a leading label ("HR 72" -> "72"); unchanged when it has none."""
    stripped = text.strip()
    for label in sorted(labels, key=len, reverse=True):
        n = len(label)
        if label_key(stripped[:n]) == label_key(label):
            return stripped[n:].strip()
    return stripped


def is_blank(text: str) -> bool:
    """True when a value shows no reading: empty, dashes ("--", "--/--") or underscores."""
    return _BLANK.fullmatch(text) is not None


def looks_like_value(word: str) -> bool:
    """A word that can be a reading: digits (with . / ,) after confusions, or dashes, maybe a "%"."""
    core = normalize_value(word).rstrip("%")
    return bool(re.fullmatch(r"[\d./]*\d[\d./]*", core)) or bool(re.fullmatch(r"-{2,}(/-{2,})?", core))


# --- what a text reader gives back -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned pixel box, [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def union(self, other: Box) -> Box:
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def as_xywh(self) -> list[int]:
        return [self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0]


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a detected text line, with its recognition score and box."""

    text: str
    score: float
    box: Box


class TextReader(Protocol):
    """OCR as MonitorOcr needs it: a full pass that returns words, and recognition of one crop."""

    def detect(self, image: np.ndarray) -> list[list[Word]]:
        """Every text line in a BGR image, each as its words in reading order."""
        ...

    def read(self, crop: np.ndarray) -> tuple[str, float]:
        """The text in a crop that holds one line (recognition only), and its score."""
        ...


class RapidOcrReader:
    """TextReader over rapidocr's bundled PP-OCR ONNX models: offline, loaded on first use.

    `threads` bounds onnxruntime's intra-op threads (None: one per core). Detection sees the frame
    scaled down to `det_max_side` pixels on its longer side, never up (rapidocr's own default
    scales a 480-pixel side up to 736, which doubles detection time for no gain on a monitor);
    None keeps rapidocr's default."""

    def __init__(self, threads: int | None = None, det_max_side: int | None = 960) -> None:
        self.threads = threads
        self.det_max_side = det_max_side
        self._engine: RapidOCR | None = None
        self._lock = threading.Lock()

    def _load(self) -> RapidOCR:
        """Create the engine once, with model paths pinned to the wheel's files (no download)."""
        with self._lock:
            if self._engine is None:
                try:
                    import rapidocr
                except ImportError as exc:
                    raise ConfigError(f"monitor OCR needs rapidocr: pip install 'rapidocr>=3,<4' ({exc})") from exc
                models = Path(rapidocr.__file__).parent / "models"
                params: dict[str, object] = {"Global.log_level": "error", "Global.use_cls": False}
                for task in ("det", "rec"):
                    found = sorted(models.glob(f"*_{task}_*.onnx"))
                    if found:
                        params[f"{task.capitalize()}.model_path"] = str(found[-1])
                if self.det_max_side is not None:
                    params |= {"Det.limit_type": "max", "Det.limit_side_len": self.det_max_side}
                if self.threads is not None:
                    params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.threads
                    params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
                self._engine = rapidocr.RapidOCR(params=params)
            return self._engine

    def detect(self, image: np.ndarray) -> list[list[Word]]:
        from rapidocr.utils.output import RapidOCROutput

        # every flag is passed: rapidocr keeps the last call's flags as its new defaults
        result = self._load()(image, use_det=True, use_cls=False, use_rec=True, return_word_box=True)
        if not isinstance(result, RapidOCROutput) or result.txts is None or result.boxes is None:
            return []
        scores = result.scores or ()
        # word boxes come one tuple per line; rapidocr drops empty ones, so fall back to whole lines then
        per_line: Sequence[object] = result.word_results
        with_words = len(per_line) == len(result.txts)
        lines = []
        for i, (quad, text) in enumerate(zip(result.boxes, result.txts, strict=True)):
            words = _words_of(per_line[i]) if with_words else []
            lines.append(words or [Word(text, float(scores[i]), _box_of(quad))])
        return lines

    def read(self, crop: np.ndarray) -> tuple[str, float]:
        from rapidocr.ch_ppocr_rec import TextRecOutput

        result = self._load()(crop, use_det=False, use_cls=False, use_rec=True, return_word_box=False)
        if not isinstance(result, TextRecOutput) or not result.txts:
            return "", 0.0
        return str(result.txts[0]), float(result.scores[0])


def _words_of(raw: object) -> list[Word]:
    """rapidocr's (text, score, quad) word tuples of one line as Words (malformed ones skipped)."""
    words = []
    for item in raw if isinstance(raw, tuple) else ():
        if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str) and item[2] is not None:
            words.append(Word(item[0], float(item[1]), _box_of(item[2])))
    return words


def _box_of(quad: object) -> Box:
    """The axis-aligned box around a quadrilateral of 4 (x, y) points."""
    points = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    return Box(int(x0), int(y0), int(x1), int(y1))


# --- the processor ---------------------------------------------------------------------------


@dataclass(slots=True)
class OcrStats:
    """What MonitorOcr has done, for tests, benchmarks and the metrics page."""

    full_passes: int = 0
    crop_reads: int = 0
    """Crops recognised on the fast path."""
    reused: int = 0
    """Crops not read again because their pixels had not changed."""
    rejected: int = 0
    """Values that did not parse or fell outside their field's range."""


@dataclass(slots=True)
class _Slot:
    """Where one field's value is read on the fast path, and how reading it has gone."""

    spec: OcrField
    box: Box | None
    """None: the label is on screen but its value was blank when the layout was found."""
    failures: int = 0
    last_crop: np.ndarray | None = None
    last_events: list[SenseEvent] = field(default_factory=list)


class MonitorOcr:
    """A Processor that reads vital signs off a monitor in the video (see the module docstring)."""

    consumes: Modality = "video"

    def __init__(
        self,
        fields: Sequence[OcrField] | None = None,
        *,
        name: str = "monitor_ocr",
        relocate_every: float = 30.0,
        max_failures: int = 3,
        missing_retry_every: float = 5.0,
        reuse_unchanged: bool = True,
        reader: TextReader | None = None,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.fields = list(fields) if fields is not None else default_fields()
        self.emits = tuple(kind for f in self.fields for kind in f.kinds)
        self.relocate_every = relocate_every
        self.max_failures = max_failures
        self.missing_retry_every = missing_retry_every
        self.reuse_unchanged = reuse_unchanged
        self.reader: TextReader = reader if reader is not None else RapidOcrReader(threads)
        if relocate_every <= 0 or missing_retry_every <= 0 or max_failures < 1:
            raise ConfigError(f"{name}: relocate_every and missing_retry_every must be > 0 and max_failures >= 1")
        self.stats = OcrStats()
        self._slots: dict[str, _Slot] = {}
        self._located_at: float | None = None
        self._shape: tuple[int, ...] = ()  # frame shape of the layout: another means another camera or scale

    def process(self, item: SourceItem) -> list[SenseEvent]:
        if not isinstance(item, Frame):
            return []
        if self._needs_full_pass(item):
            return self._full_pass(item)
        return self._read_crops(item)

    def flush(self) -> list[SenseEvent]:
        return []

    @property
    def layout(self) -> dict[str, list[int] | None]:
        """Each located field's value crop as [x, y, w, h] (None: label seen, value blank)."""
        return {name: None if slot.box is None else slot.box.as_xywh() for name, slot in self._slots.items()}

    def _needs_full_pass(self, frame: Frame) -> bool:
        """No layout yet, the stream restarted or changed size, it is time to look again, or a crop
        keeps failing."""
        if self._located_at is None or frame.source_time < self._located_at or frame.image.shape != self._shape:
            return True
        since = frame.source_time - self._located_at
        missing = not self._slots or any(slot.box is None for slot in self._slots.values())
        if since >= self.relocate_every or (missing and since >= self.missing_retry_every):
            return True
        return any(slot.failures >= self.max_failures for slot in self._slots.values())

    def _full_pass(self, frame: Frame) -> list[SenseEvent]:
        """Detect and read all text, cache each field's value crop, and emit what was read."""
        # imported here, not at the top: ocr_layout builds on this module's Box, Word and label rules
        from modelfarm.senses.processors.ocr_layout import find_layout, value_crop

        found = find_layout(self.reader.detect(frame.image), self.fields)
        self.stats.full_passes += 1
        self._located_at, self._shape = frame.source_time, frame.image.shape
        self._slots = {}
        events: list[SenseEvent] = []
        for name, hit in found.items():
            box = None if hit.value is None else value_crop(frame.image, hit.value.box)
            slot = self._slots[name] = _Slot(hit.field, box)
            if hit.value is not None and box is not None:
                slot.last_crop = _crop(frame.image, box).copy()
                events += self._emit(slot, hit.value.text, hit.value.score, frame.source_time)
        return events

    def _read_crops(self, frame: Frame) -> list[SenseEvent]:
        """The fast path: recognition on each cached crop, or the last reading if it has not changed."""
        events: list[SenseEvent] = []
        for slot in self._slots.values():
            if slot.box is None:
                continue
            crop = _crop(frame.image, slot.box)
            if self.reuse_unchanged and slot.last_crop is not None and not _changed(crop, slot.last_crop):
                self.stats.reused += 1
                events += [_restamp(e, frame.source_time) for e in slot.last_events]
                if slot.failures:  # the same unreadable pixels: still failing, so relocation comes
                    slot.failures += 1
                continue
            text, score = self.reader.read(crop)
            self.stats.crop_reads += 1
            slot.last_crop = crop.copy()
            events += self._emit(slot, text, score, frame.source_time)
        return events

    def _emit(self, slot: _Slot, text: str, score: float, source_time: float) -> list[SenseEvent]:
        """Events for one value's text; a blank ("--") emits nothing, a bad read counts a failure."""
        slot.last_events = []
        rest = strip_label(text, slot.spec.labels)
        if rest and is_blank(rest):  # the monitor shows "--"; an empty read is a misplaced crop
            slot.failures = 0
            return []
        numbers = slot.spec.parse(text)
        if numbers is None:
            slot.failures += 1
            self.stats.rejected += 1
            return []
        slot.failures = 0
        slot.last_events = [
            SenseEvent(
                kind=kind,
                source_time=source_time,
                processor=self.name,
                value=number,
                unit=slot.spec.unit,
                confidence=round(score, 4),
                data={"raw": text},
            )
            for kind, number in zip(slot.spec.kinds, numbers, strict=True)
        ]
        return list(slot.last_events)


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The pixels under `box` (a view, not a copy)."""
    return image[box.y0 : box.y1, box.x0 : box.x1]


def _changed(crop: np.ndarray, before: np.ndarray) -> bool:
    """True when a crop differs from the last one read by more than compression noise: over
    0.2% of its pixels moved by more than 64 grey levels (a changed digit moves hundreds)."""
    if crop.shape != before.shape:
        return True
    diff = cv2.absdiff(crop, before)
    moved = (diff.max(axis=2) if diff.ndim == 3 else diff) > 64
    return int(np.count_nonzero(moved)) > 0.002 * moved.size


def _restamp(event: SenseEvent, source_time: float) -> SenseEvent:
    """The same reading, seen again in a later frame."""
    return replace(event, source_time=source_time, emitted_at=time.time(), data=dict(event.data))
