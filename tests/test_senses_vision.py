"""Vision senses on real models: monitor OCR (rapidocr), people (OpenCV HOG), faces (mediapipe).

Monitor frames and videos come from `render_monitor` / `write_monitor_video`; faces from the
Grace Hopper portrait that matplotlib ships. No photo of whole upright people ships with any
installed package, so HOG is checked on drawn silhouettes (which its gradients do recognise).
The OCR models load once for the module (`reader`); each test builds its own MonitorOcr on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Frame, SenseEvent, TextItem
from modelfarm.senses.monitor_video import monitor_values_at, render_monitor, write_monitor_video
from modelfarm.senses.processors.ocr import MonitorOcr, OcrField, RapidOcrReader, default_fields
from modelfarm.senses.processors.people import FaceDetector, PeopleDetector

NORMAL = {"hr": 72, "spo2": 97, "bp": "120/80", "rr": 16, "temp": 37.0}
SICK = {"hr": 131, "spo2": 88, "bp": "90/60", "rr": 22, "temp": 38.4}
COLD = {"hr": 45, "spo2": 100, "bp": "145/95", "rr": 8, "temp": 35.9}


@pytest.fixture(scope="module")
def reader() -> RapidOcrReader:
    """rapidocr's models, loaded once for the module (2 threads: this machine's cores)."""
    reader = RapidOcrReader(threads=2)
    reader.detect(np.zeros((64, 64, 3), np.uint8))  # load both models now, so tests time warm calls
    reader.read(np.zeros((48, 96, 3), np.uint8))
    return reader


def frame(image: np.ndarray, t: float, index: int = 0) -> Frame:
    return Frame(image=image, source_time=t, index=index)


def monitor(values: Mapping[str, str | float], t: float = 0.0, index: int = 0) -> Frame:
    return frame(render_monitor(values, t=t), t, index)


def readings(events: list[SenseEvent]) -> dict[str, float | None]:
    return {e.kind: e.value for e in events}


def expected(values: Mapping[str, str | float]) -> dict[str, float]:
    """What MonitorOcr should emit for what the monitor shows (blank fields emit nothing)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        text = str(value)
        if "-" in text:
            continue
        if key == "bp":
            sys_, dia = text.split("/")
            out |= {"bp_sys": float(sys_), "bp_dia": float(dia)}
        else:
            out[key] = float(value)
    return out


# --- monitor OCR ------------------------------------------------------------------------------


def test_reads_every_field_then_uses_the_cached_layout(reader: RapidOcrReader) -> None:
    ocr = MonitorOcr(reader=reader)
    first = ocr.process(monitor(NORMAL, 0.0))
    assert readings(first) == expected(NORMAL)
    assert ocr.stats.full_passes == 1 and set(ocr.layout) == {"hr", "spo2", "bp", "rr", "temp"}
    spo2 = next(e for e in first if e.kind == "spo2")
    assert (spo2.unit, spo2.processor, spo2.data["raw"]) == ("%", "monitor_ocr", "97")
    assert spo2.confidence is not None and spo2.confidence > 0.8

    for i, values in enumerate([SICK, COLD, NORMAL], start=1):
        events = ocr.process(monitor(values, i * 0.2, i))
        assert readings(events) == expected(values), values
        assert all(e.source_time == pytest.approx(i * 0.2) for e in events)
    # the layout was found once; later frames ran recognition on the five value crops only
    assert ocr.stats.full_passes == 1 and ocr.stats.crop_reads == 15  # (speed: benchmarks/senses_latency.py)


def test_an_unchanged_crop_is_not_read_again(reader: RapidOcrReader) -> None:
    ocr = MonitorOcr(reader=reader)
    ocr.process(monitor(NORMAL, 0.0))
    # same values, the waveforms have moved on: nothing to recognise again
    events = ocr.process(monitor(NORMAL, 0.2, 1))
    assert readings(events) == expected(NORMAL)
    assert ocr.stats.crop_reads == 0 and ocr.stats.reused == 5
    changed = ocr.process(monitor({**NORMAL, "spo2": 91}, 0.4, 2))
    assert readings(changed)["spo2"] == 91 and ocr.stats.crop_reads == 1


def test_implausible_values_are_rejected(reader: RapidOcrReader) -> None:
    # a temperature whose decimal point OCR lost ("384") and an SpO2 over a configured maximum
    fields = [f if f.name != "spo2" else OcrField("spo2", ["SpO2"], "%", min=50, max=95) for f in default_fields()]
    ocr = MonitorOcr(fields, reader=reader)
    events = readings(ocr.process(monitor({**NORMAL, "temp": "384"})))
    assert "temp" not in events and "spo2" not in events
    assert events == {k: v for k, v in expected(NORMAL).items() if k not in ("temp", "spo2")}
    assert ocr.stats.rejected == 2


def test_a_blank_value_emits_nothing_until_it_shows(reader: RapidOcrReader) -> None:
    ocr = MonitorOcr(reader=reader, missing_retry_every=5.0)
    blank = {**NORMAL, "spo2": "--", "bp": "--/--"}
    assert readings(ocr.process(monitor(blank, 0.0))) == expected(blank)
    assert ocr.layout["spo2"] is None
    # the sensor comes back: its value is found at the next retry of the full pass
    assert "spo2" not in readings(ocr.process(monitor(NORMAL, 1.0, 1)))
    assert readings(ocr.process(monitor(NORMAL, 5.0, 2))) == expected(NORMAL)
    assert ocr.stats.full_passes == 2
    # a value that goes blank on the fast path emits nothing and is not an error
    assert readings(ocr.process(monitor(blank, 5.2, 3))) == expected(blank)
    assert ocr.stats.full_passes == 2 and ocr.stats.rejected == 0


def test_a_moved_monitor_is_located_again(reader: RapidOcrReader) -> None:
    ocr = MonitorOcr(reader=reader, max_failures=2)
    ocr.process(monitor(NORMAL, 0.0))
    # the camera was moved: the monitor now fills 80% of the picture, further right and down
    moved = np.zeros((480, 640, 3), np.uint8)
    moved[80:464, 100:612] = cv2.resize(render_monitor(SICK, t=1.0), (512, 384), interpolation=cv2.INTER_AREA)
    for i in range(1, 3):
        ocr.process(frame(moved, i * 0.2, i))
    assert ocr.stats.full_passes == 1 and ocr.stats.rejected >= 1
    events = ocr.process(frame(moved, 0.6, 3))
    assert ocr.stats.full_passes == 2
    assert readings(events) == expected(SICK)


def test_ocr_ignores_other_inputs_and_checks_its_fields() -> None:
    ocr = MonitorOcr()
    assert ocr.process(TextItem("SpO2 97", 0.0)) == [] and ocr.flush() == []
    assert ocr.emits == ("hr", "spo2", "bp_sys", "bp_dia", "rr", "temp")
    with pytest.raises(ConfigError, match="groups"):
        OcrField("bp", ["BP"], "mmHg", r"(\d+)/(\d+)")
    assert OcrField("temp", ["TEMP"], "°C", min=25, max=45).parse("TEMP 38,4") == (38.4,)
    assert OcrField("spo2", ["SpO2"], "%").parse("Sp02 9O") == (90.0,)


def test_a_written_video_reads_back_and_its_values_change_on_time(reader: RapidOcrReader, tmp_path: Path) -> None:
    timeline = [(0.0, NORMAL), (1.0, {"spo2": (97.0, 89.0)}), (3.0, {"hr": 131, "bp": "90/60"})]
    path = tmp_path / "monitor.avi"
    assert write_monitor_video(path, timeline, fps=5, duration=4.0) == 20
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == 5 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 20
    ocr = MonitorOcr(reader=reader)
    events: list[SenseEvent] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        events += ocr.process(frame(image, index / 5, index))
        index += 1
    capture.release()
    assert index == 20 and ocr.stats.full_passes == 1
    for event in events:  # every reading is what the monitor showed at that moment
        assert event.value == expected(monitor_values_at(timeline, event.source_time, 4.0))[event.kind], event
    first = {
        kind: min(e.source_time for e in events if e.kind == kind and e.value == value)
        for kind, value in [("spo2", 89.0), ("hr", 131.0), ("bp_sys", 90.0)]
    }
    assert first == {"spo2": 3.0, "hr": 3.0, "bp_sys": 3.0}
    assert [e.value for e in events if e.kind == "spo2" and 1.0 <= e.source_time <= 2.0][::5] == [97.0, 93.0]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_monitor_videos_are_deterministic(tmp_path: Path, suffix: str) -> None:
    timeline = [(0.0, NORMAL), (0.4, SICK)]
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    assert write_monitor_video(first, timeline, fps=10) == 14  # last change + 1 s
    write_monitor_video(second, timeline, fps=10)
    assert first.read_bytes() == second.read_bytes()
    capture = cv2.VideoCapture(str(first))
    assert (capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)) == (10, 14)
    capture.release()
    with pytest.raises(ValueError, match=r"\.avi or \.mp4"):
        write_monitor_video(tmp_path / "x.gif", timeline)


# --- people and faces -------------------------------------------------------------------------


def draw_person(image: np.ndarray, x: int, y: int, height: int) -> None:
    """A dark standing silhouette (head, torso, arms, legs) with its head's top at (x, y)."""
    u = height / 8.0

    def pt(dx: float, dy: float) -> list[int]:
        return [round(x + dx * u), round(y + dy * u)]

    color = (40, 40, 40)
    cv2.ellipse(image, pt(0, 0.55), (round(0.42 * u), round(0.55 * u)), 0, 0, 360, color, -1)
    parts = [
        [pt(-0.25, 1.0), pt(0.25, 1.0), pt(0.25, 1.3), pt(-0.25, 1.3)],
        [pt(-1, 1.3), pt(1, 1.3), pt(0.8, 4.3), pt(-0.8, 4.3)],
    ]
    for s in (-1, 1):
        parts.append([pt(s * 0.8, 1.4), pt(s * 1.15, 1.5), pt(s * 1.35, 4.3), pt(s * 1.0, 4.3)])  # arm
        parts.append([pt(s * 0.05, 4.2), pt(s * 0.8, 4.2), pt(s * 0.75, 8), pt(s * 0.2, 8)])  # leg
    cv2.fillPoly(image, [np.array(p, np.int32) for p in parts], color)


def street(people: list[tuple[int, int]]) -> np.ndarray:
    """A light 640x480 scene with 200 px tall silhouettes whose heads top out at `people`."""
    image = np.full((480, 640, 3), 200, np.uint8)
    for x, y in people:
        draw_person(image, x, y, 200)
    return cv2.GaussianBlur(image, (5, 5), 0)


def test_people_are_counted_with_boxes_in_frame_pixels() -> None:
    detector = PeopleDetector()  # HOG on a 320 px wide copy
    events = detector.process(frame(street([(200, 40), (460, 60)]), 1.5))
    assert len(events) == 1 and events[0].kind == "people" and events[0].value == 2
    boxes = sorted(events[0].data["boxes"])
    for (x, y, w, h), (cx, top) in zip(boxes, [(200, 40), (460, 60)], strict=True):
        # each box holds its silhouette (head top to feet) in 640x480 coordinates
        assert x < cx < x + w and y <= top + 20 and y + h >= top + 180 and 150 <= h <= 360
    assert all(score > 0 for score in events[0].data["scores"])


def test_people_events_only_when_the_count_changes() -> None:
    two, empty = street([(200, 40), (460, 60)]), np.full((480, 640, 3), 200, np.uint8)
    scenes = [two, two, empty, empty, two]
    gated = PeopleDetector()
    counts = [e.value for i, img in enumerate(scenes) for e in gated.process(frame(img, i))]
    assert counts == [2, 0, 2]
    every = PeopleDetector(on_change=False)
    assert [e.value for i, img in enumerate(scenes) for e in every.process(frame(img, i))] == [2, 2, 0, 0, 2]


def grace_hopper() -> np.ndarray:
    image = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert image is not None, "matplotlib's sample data is missing"
    return image


def test_faces_are_found_in_a_real_photo() -> None:
    portrait = grace_hopper()  # 512x600, one face
    detector = FaceDetector()
    events = detector.process(frame(portrait, 0.0))
    assert len(events) == 1 and events[0].kind == "faces" and events[0].value == 1
    (x, y, w, h), score = events[0].data["boxes"][0], events[0].confidence
    assert 120 < x + w / 2 < 400 and 150 < y + h / 2 < 350 and 120 < w < 280 and score is not None and score > 0.8
    pair = np.hstack([portrait, portrait])  # two faces, the second 512 px further right
    second = detector.process(frame(pair, 0.2))
    assert [e.value for e in second] == [2]
    xs = sorted(b[0] for b in second[0].data["boxes"])
    assert xs[1] - xs[0] == pytest.approx(512, abs=8)
    assert detector.process(frame(pair, 0.4)) == []  # still two faces: nothing new
    assert [e.value for e in detector.process(frame(np.zeros((480, 640, 3), np.uint8), 0.6))] == [0]
