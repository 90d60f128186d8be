"""Find a monitor's layout in one full OCR pass: where each field's value is, and the crop to read it from.

A full pass gives text lines as words with boxes. Each line's words are sorted into labels
("SpO2", maybe with its value inline: "HR 72") and free values; every label is then paired
with the nearest free value to its right or below it, each value to one label. A value's
detection box is then fitted to the value's ink and widened into the blank screen around it,
so the crop still holds the value when it grows a digit, and stops short of other ink.
The fields, words and boxes it works with are `ocr`'s; MonitorOcr calls this on each full pass.

    [[Word("SpO2", ...)], [Word("97", ...)]] -> find_layout -> {"spo2": Found(field, label, value)}
    image, value box -> value_crop -> the box MonitorOcr reads on later frames
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from modelfarm.senses.processors.ocr import Box, OcrField, Word, is_blank, label_key, looks_like_value

__all__ = ["Found", "find_layout", "value_crop"]

_MAX_GAP = 3.0
"""A value belongs to a label when it starts within this many label heights of it."""
_INK_CONTRAST = 60
"""Grey levels between text and the screen behind it (a monitor's text is bright on dark)."""
_GROW = 1.2
"""How far (in text heights) a value crop reaches sideways into blank screen, room for a digit more."""


@dataclass(frozen=True, slots=True)
class Found:
    """A field as a full pass found it: the label's box and the value next to it (None: blank)."""

    field: OcrField
    label: Box
    value: Word | None


def find_layout(lines: Sequence[Sequence[Word]], fields: Sequence[OcrField]) -> dict[str, Found]:
    """Pair every label seen with its value: the same text ("HR 72") first, else the nearest value
    to the right or below, each value to one label. Fields whose label is not seen are absent."""
    labels: list[tuple[OcrField, Box, Word | None]] = []
    free: list[Word] = []
    for words in lines:
        _split_line(words, fields, labels, free)
    pairs: list[tuple[float, int, int]] = []  # (distance, label index, free value index or -1 for inline)
    for i, (_, label_box, inline) in enumerate(labels):
        if inline is not None:
            pairs.append((0.0, i, -1))
        for j, word in enumerate(free):
            gap = _gap(label_box, word.box)
            if gap is not None:
                pairs.append((gap, i, j))
    found: dict[str, Found] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs, key=lambda p: p[0]):
        ocr_field, label_box, inline = labels[i]
        if ocr_field.name in found or j in used:
            continue
        value = inline if j < 0 else free[j]
        used.add(j)
        found[ocr_field.name] = Found(ocr_field, label_box, None if value is None or is_blank(value.text) else value)
    for ocr_field, label_box, _ in labels:
        found.setdefault(ocr_field.name, Found(ocr_field, label_box, None))
    return found


def _split_line(
    words: Sequence[Word],
    fields: Sequence[OcrField],
    labels: list[tuple[OcrField, Box, Word | None]],
    free: list[Word],
) -> None:
    """Sort a line's words into labels (with any value that follows them inline) and free values."""
    current: tuple[OcrField, Box] | None = None
    values: list[Word] = []

    def close() -> None:
        groups = _groups(values)
        if current is not None:  # the label takes the group that follows it, the rest is free
            labels.append((*current, _merge(groups.pop(0)) if groups else None))
        free.extend(w for w in map(_merge, groups) if w is not None)
        values.clear()

    for word in words:
        match = _match_label(word.text, fields)
        if match is not None:
            close()
            current = (match[0], word.box)
            if match[1] and looks_like_value(match[1]):
                values.append(Word(match[1], word.score, word.box))
        elif looks_like_value(word.text):
            values.append(word)
        else:
            close()
            current = None
    close()


def _match_label(text: str, fields: Sequence[OcrField]) -> tuple[OcrField, str] | None:
    """The field whose label starts `text` (longest label wins), and the text after it."""
    best: tuple[int, OcrField, str] | None = None
    for ocr_field in fields:
        for label in ocr_field.labels:
            n = len(label)
            rest = text[n:]
            matches = label_key(text[:n]) == label_key(label) and (not rest or looks_like_value(rest))
            if matches and (best is None or n > best[0]):
                best = (n, ocr_field, rest)
    return None if best is None else (best[1], best[2])


def _merge(words: Sequence[Word]) -> Word | None:
    """Value words as one ("120 / 80"), or None when there are none. Only words close together
    merge: a detector may join two panels' values into one line ("120/80     37.0")."""
    if not words:
        return None
    box = words[0].box
    for word in words[1:]:
        box = box.union(word.box)
    return Word(" ".join(w.text for w in words), min(w.score for w in words), box)


def _groups(words: Sequence[Word]) -> list[list[Word]]:
    """Split a line's words where the gap between two is wider than a space (0.3 of the line's height)."""
    groups: list[list[Word]] = []
    for word in words:
        if groups and word.box.x0 - groups[-1][-1].box.x1 <= 0.3 * word.box.height:
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def _gap(label: Box, value: Box) -> float | None:
    """How far `value` starts from `label` when it lies to the right of or below it, else None."""
    cx, cy = value.center
    if cx < label.x0 or cy < label.y0:
        return None
    gap = float(np.hypot(max(0, value.x0 - label.x1), max(0, value.y0 - label.y1)))
    return gap if gap <= _MAX_GAP * max(label.height, 1) else None


def value_crop(image: np.ndarray, box: Box) -> Box:
    """The box to read a value from on later frames: the value's own ink, widened into the blank
    screen around it (up to `_GROW` text heights sideways, a third of one up and down) and
    stopping short of any other ink (a label, a separator line, a waveform)."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image  # (H, W)
    height, width = gray.shape
    box = Box(max(0, box.x0), max(0, box.y0), min(width, box.x1), min(height, box.y1))
    reach = int(_GROW * box.height)
    area = gray[max(0, box.y0 - box.height) : box.y1 + box.height, max(0, box.x0 - reach) : box.x1 + reach]
    ink = np.abs(gray.astype(np.int16) - int(np.median(area))) > _INK_CONTRAST  # (H, W) bool
    own = _ink_bounds(ink, box) or box
    top, bottom = _grow(np.asarray(ink[:, own.x0 : own.x1].any(axis=1)), own.y0, own.y1, own.height // 3)
    left, right = _grow(np.asarray(ink[top:bottom].any(axis=0)), own.x0, own.x1, int(_GROW * own.height))
    return Box(left, top, right, bottom)


def _ink_bounds(ink: np.ndarray, box: Box) -> Box | None:
    """The tight box around the value's ink inside `box`: the tallest band of inked rows (a
    detection box often takes in the bottom of the label above), and the inked columns in it."""
    region = ink[box.y0 : box.y1, box.x0 : box.x1]
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return None
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # runs of consecutive inked rows
    band = max(bands, key=len)
    top, bottom = box.y0 + int(band[0]), box.y0 + int(band[-1]) + 1
    cols = np.flatnonzero(ink[top:bottom, box.x0 : box.x1].any(axis=0))
    return Box(box.x0 + int(cols[0]), top, box.x0 + int(cols[-1]) + 1, bottom)


def _grow(profile: np.ndarray, lo: int, hi: int, reach: int) -> tuple[int, int]:
    """Widen [lo, hi) along a 1-D ink profile: take in ink that touches it (the rest of a glyph),
    then blank space up to `reach`, stopping a few pixels before the next ink."""
    n = len(profile)
    while lo > 0 and profile[lo - 1]:
        lo -= 1
    while hi < n and profile[hi]:
        hi += 1
    start = lo
    while start > max(0, lo - reach) and not profile[start - 1]:
        start -= 1
    if start > 0 and profile[start - 1]:  # stopped by other ink: keep half the gap, at most 3 px
        start += min(3, (lo - start) // 2)
    end = hi
    while end < min(n, hi + reach) and not profile[end]:
        end += 1
    if end < n and profile[end]:
        end -= min(3, (end - hi) // 2)
    return start, end
