"""Synthetic vital-signs monitor frames and videos, for demos and tests.

A bedside monitor is drawn the way real ones look: a dark screen, waveforms on the left (ECG,
pleth, respiration) sweeping with time, and numeric panels with a small label and a large
coloured value: HR and SpO2 and RR in the right column, NIBP and TEMP along the bottom. Labels
and values sit in fixed places, so a reader can find the layout once and then read only the
value crops. Everything is a pure function of the values and the time: the same inputs give
the same pixels (and, through OpenCV's encoders, the same video).

Values are keyed "hr", "spo2", "bp" (a "120/80" string), "rr" and "temp"; a missing key or
the string "--" is drawn as dashes, the way a monitor shows a sensor that is off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MonitorValue = str | float | tuple[float, float]
"""A shown value: text as is, a number, or (in a timeline) a linear ramp (start, end)."""

Timeline = Sequence[tuple[float, Mapping[str, MonitorValue]]]
"""(time in seconds, values that change then); each entry updates the previous values."""

_BASE_W, _BASE_H = 640, 480
"""The layout below is drawn for 640x480 and scaled to other sizes."""

_BG = (12, 12, 12)
_GRID = (60, 60, 60)

_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}

_DECIMALS = {"hr": 0, "spo2": 0, "rr": 0, "temp": 1}
"""How many decimals a numeric value is shown with (keys not listed: 0 if whole, else 1)."""


@dataclass(frozen=True, slots=True)
class _Panel:
    """One numeric panel: label at `label_at`, unit to its right, value (large) at `value_at`."""

    key: str
    label: str
    unit: str
    color: tuple[int, int, int]  # BGR
    label_at: tuple[int, int]  # text baseline origin, 640x480 pixels
    unit_at: tuple[int, int]
    value_at: tuple[int, int]
    value_scale: float
    blank: str = "--"


_PANELS = (
    _Panel("hr", "HR", "bpm", (0, 230, 0), (446, 58), (580, 58), (456, 138), 2.6),
    _Panel("spo2", "SpO2", "%", (230, 230, 0), (446, 198), (600, 198), (456, 278), 2.6),
    _Panel("rr", "RR", "rpm", (0, 230, 230), (446, 338), (580, 338), (456, 410), 2.0),
    _Panel("bp", "NIBP", "mmHg", (110, 110, 255), (14, 388), (176, 388), (24, 456), 1.7, "--/--"),
    _Panel("temp", "TEMP", "C", (0, 170, 255), (264, 388), (396, 388), (274, 456), 1.7),
)

_WAVES = (
    # name, colour, top, bottom (640x480 pixels) of its band
    ("II", (0, 230, 0), 40, 150),
    ("Pleth", (230, 230, 0), 160, 260),
    ("Resp", (0, 230, 230), 270, 350),
)


def format_value(key: str, value: str | float) -> str:
    """The text a monitor shows for `value`: strings as given, numbers with the key's decimals."""
    if isinstance(value, str):
        return value
    decimals = _DECIMALS.get(key, 0 if float(value).is_integer() else 1)
    return f"{value:.{decimals}f}"


def render_monitor(values: Mapping[str, str | float], size: tuple[int, int] = (640, 480), t: float = 0.0) -> np.ndarray:
    """Draw one monitor frame: BGR uint8 of `size` (width, height) showing `values` at time `t`.

    `t` (seconds) moves the waveforms, so consecutive frames differ the way a live screen does."""
    canvas: np.ndarray = np.full((_BASE_H, _BASE_W, 3), _BG, np.uint8)  # (H, W, 3) BGR
    _draw_frame_lines(canvas)
    _draw_waves(canvas, values, t)
    for panel in _PANELS:
        _draw_panel(canvas, panel, values.get(panel.key))
    if size != (_BASE_W, _BASE_H):
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    return canvas


def _draw_frame_lines(canvas: np.ndarray) -> None:
    """Header bar and panel separators, as a monitor's static chrome."""
    cv2.putText(canvas, "BED 12  ADULT", (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (170, 170, 170), 1, cv2.LINE_AA)
    cv2.line(canvas, (0, 30), (_BASE_W, 30), _GRID, 1)
    cv2.line(canvas, (432, 30), (432, _BASE_H), _GRID, 1)
    cv2.line(canvas, (0, 362), (432, 362), _GRID, 1)
    cv2.line(canvas, (432, 170), (_BASE_W, 170), _GRID, 1)
    cv2.line(canvas, (432, 310), (_BASE_W, 310), _GRID, 1)
    cv2.line(canvas, (250, 362), (250, _BASE_H), _GRID, 1)


def _draw_panel(canvas: np.ndarray, panel: _Panel, value: str | float | None) -> None:
    """Label and unit in small type, the value large, all in the panel's colour."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, panel.label, panel.label_at, font, 0.75, panel.color, 2, cv2.LINE_AA)
    cv2.putText(canvas, panel.unit, panel.unit_at, font, 0.55, panel.color, 1, cv2.LINE_AA)
    text = panel.blank if value is None else format_value(panel.key, value)
    thickness = max(2, round(panel.value_scale * 1.6))
    cv2.putText(canvas, text, panel.value_at, cv2.FONT_HERSHEY_DUPLEX, panel.value_scale, panel.color, thickness)


def _draw_waves(canvas: np.ndarray, values: Mapping[str, str | float], t: float) -> None:
    """Sweeping traces: ECG beats at the shown HR, pleth follows it, respiration at the shown RR."""
    hr = _number(values.get("hr"), 75.0)
    rr = _number(values.get("rr"), 15.0)
    xs = np.arange(60, 420, dtype=np.float64)  # (W,) pixel columns of the trace
    seconds = t - (420 - xs) / 90.0  # 90 px per second, newest sample on the right
    breaths = 0.5 - 0.5 * np.cos(2 * math.pi * seconds * rr / 60.0)
    shapes = (_ecg(seconds * hr / 60.0), _pleth(seconds * hr / 60.0), breaths)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for (name, color, top, bottom), shape in zip(_WAVES, shapes, strict=True):
        cv2.putText(canvas, name, (10, top + 20), font, 0.5, color, 1, cv2.LINE_AA)
        ys = bottom - 8 - shape * (bottom - top - 24)
        points = np.stack([xs, ys], axis=1).round().astype(np.int32)  # (W, 2)
        cv2.polylines(canvas, [points], False, color, 2, cv2.LINE_AA)


def _ecg(beats: np.ndarray) -> np.ndarray:
    """A PQRST-like complex once per beat, in [0, 1]; `beats` is time in beats."""
    phase = beats - np.floor(beats)
    p = 0.12 * np.exp(-(((phase - 0.15) / 0.03) ** 2))
    q = -0.10 * np.exp(-(((phase - 0.26) / 0.02) ** 2))
    r = 1.00 * np.exp(-(((phase - 0.30) / 0.022) ** 2))
    s = -0.15 * np.exp(-(((phase - 0.34) / 0.02) ** 2))
    wave_t = 0.25 * np.exp(-(((phase - 0.55) / 0.06) ** 2))
    result: np.ndarray = 0.2 + 0.75 * (p + q + r + s + wave_t)
    return result


def _pleth(beats: np.ndarray) -> np.ndarray:
    """A plethysmograph pulse (fast rise, slow fall with a notch), in [0, 1]."""
    phase = beats - np.floor(beats)
    rise = np.exp(-(((phase - 0.35) / 0.08) ** 2))
    notch = 0.35 * np.exp(-(((phase - 0.6) / 0.08) ** 2))
    result: np.ndarray = np.clip(0.1 + 0.8 * np.maximum(rise, notch), 0.0, 1.0)
    return result


def _number(value: str | float | None, default: float) -> float:
    """`value` as a number for driving the waveforms; `default` when it is text such as "--"."""
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def monitor_values_at(timeline: Timeline, t: float, end: float | None = None) -> dict[str, str | float]:
    """The values shown at time `t`: each entry updates the previous ones from its time on.

    A (start, end) tuple ramps linearly from its entry's time to the next entry's time (or to
    `end` for the last entry), then holds its end value; numbers are rounded the way they are
    shown, so what this returns is exactly what the frame displays."""
    entries = sorted(timeline, key=lambda entry: entry[0])
    shown: dict[str, str | float] = {}
    for i, (start, changes) in enumerate(entries):
        if start > t:
            break
        stop = entries[i + 1][0] if i + 1 < len(entries) else end
        for key, value in changes.items():
            shown[key] = _ramp(key, value, start, stop, t) if isinstance(value, tuple) else value
    return shown


def _ramp(key: str, value: tuple[float, float], start: float, stop: float | None, t: float) -> float:
    """The ramp's value at `t`, rounded to the decimals the monitor shows for `key`."""
    first, last = value
    span = (stop - start) if stop is not None else 0.0
    fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (t - start) / span))
    return float(format_value(key, first + (last - first) * fraction))


def iter_monitor_frames(
    timeline: Timeline, fps: float = 5.0, duration: float | None = None, size: tuple[int, int] = (640, 480)
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time, frame) at `fps` for `duration` seconds (default: last change + 1 s)."""
    total = _duration(timeline, duration)
    for index in range(round(total * fps)):
        t = index / fps
        yield t, render_monitor(monitor_values_at(timeline, t, total), size, t)


def write_monitor_video(
    path: str | Path,
    timeline: Timeline,
    fps: float = 5.0,
    duration: float | None = None,
    size: tuple[int, int] = (640, 480),
) -> int:
    """Write the timeline as a video (.avi: MJPG, .mp4: mp4v) and return the number of frames.

    `duration` defaults to one second past the last change, so the last values are visible."""
    path = Path(path)
    codec = _CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"write_monitor_video writes .avi or .mp4, not {path.name!r}")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV could not open a {codec} writer for {path}")
    count = 0
    try:
        for _, frame in iter_monitor_frames(timeline, fps, duration, size):
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    return count


def _duration(timeline: Timeline, duration: float | None) -> float:
    """The video's length: as given, or one second past the last change."""
    if duration is not None:
        return duration
    return max((entry[0] for entry in timeline), default=0.0) + 1.0
