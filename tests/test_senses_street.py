"""The street demo end to end: a generated dashboard video and cabin audio through real HOG people
detection, rapidocr scene text and the siren detector; the rules must raise the scripted alerts at
the scripted times (examples/street/scenario.py), once each. And SceneText on its own: on the
demo's sign frames, and on a scripted TextReader for what OCR gets slightly wrong."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from modelfarm.errors import ConfigError
from modelfarm.manifest import load_manifest
from modelfarm.senses.build import build, open_sources
from modelfarm.senses.events import Frame
from modelfarm.senses.pipeline import Pipeline
from modelfarm.senses.processors.ocr import Box, Word
from modelfarm.senses.processors.scene_text import SceneText, speed_limit
from modelfarm.senses.sources import Clock
from tests.conftest import example_module

STREET = Path(__file__).resolve().parents[1] / "examples" / "street"


def test_the_street_demo_raises_its_alerts_at_the_expected_times(tmp_path: Path) -> None:
    scenario, make_media = example_module("street", "scenario"), example_module("street", "make_media")
    video, audio = make_media.make(tmp_path)
    manifest = load_manifest(STREET / "farm.toml")
    spec, processors, engine = build(manifest, "street")
    sources = open_sources(spec, manifest.base_dir, video=str(video), audio=str(audio))
    report = asyncio.run(Pipeline("street", processors, engine).run(sources, Clock(realtime=False)))

    fired = {a.rule: a for a in report.alerts}
    assert sorted(a.rule for a in report.alerts) == sorted(r for r, _, _ in scenario.EXPECTED)  # one per episode
    for rule, earliest, latest in scenario.EXPECTED:
        assert earliest <= fired[rule].source_time <= latest, (rule, fired[rule].source_time)
    emergency = fired["emergency_vehicle"]
    assert emergency.severity == "critical" and {e.kind for e in emergency.evidence} == {"siren", "people"}
    limit = fired["speed_limit"].evidence[0]
    assert (limit.text, limit.value) == ("SPEED LIMIT 30", 30.0)
    assert report.as_dict()["frames_dropped"] == 0  # a fast replay waits for its processors


def test_scene_text_reads_the_demo_signs() -> None:
    make_media = example_module("street", "make_media")
    reader = SceneText(words=["STOP", "SPEED LIMIT", "YIELD"], det_max_side=480, threads=2)
    empty = reader.process(Frame(make_media.render_street(10.0), 10.0, 50))  # no sign, nobody
    (stop,) = reader.process(Frame(make_media.render_street(25.0), 25.0, 125))
    (limit,) = reader.process(Frame(make_media.render_street(45.0), 45.0, 225))

    assert empty == []
    assert (stop.kind, stop.text, stop.value, stop.processor) == ("sign", "STOP", None, "scene_text")
    assert stop.confidence is not None and stop.confidence >= 0.6
    x, y, w, h = stop.data["box"]
    assert 520 < x < x + w < 640 and 60 < y < y + h < 180  # on the octagon, right of the road
    # three stacked lines on one sign read as one text, with the limit as the value
    assert (limit.text, limit.value) == ("SPEED LIMIT 30", 30.0)
    assert limit.data["box"][3] > 100  # the box spans SPEED, LIMIT and 30


class ScriptedReader:
    """A TextReader that returns the given lines for every frame: (text, score) each."""

    def __init__(self, lines: list[tuple[str, float]]) -> None:
        self.lines = lines

    def detect(self, image: np.ndarray) -> list[list[Word]]:
        return [[Word(text, score, Box(10, 100 * i, 110, 100 * i + 40))] for i, (text, score) in enumerate(self.lines)]

    def read(self, crop: np.ndarray) -> tuple[str, float]:
        return "", 0.0


def _frame(t: float) -> Frame:
    return Frame(np.zeros((480, 640, 3), np.uint8), t, round(5 * t))


def test_scene_text_writes_words_back_filters_and_does_not_repeat_itself() -> None:
    # OCR slips (0 for O, a lost space), a low-confidence read, a shop sign, a bare number
    script = ScriptedReader([("ST0P", 0.9), ("SPEEDLIMIT 5O", 0.8), ("YIELD", 0.4), ("PIZZA", 0.95), ("80", 0.9)])
    signs = SceneText(words=["stop", "Speed limit", "yield"], reader=script, repeat_after=10.0)
    first = signs.process(_frame(0.0))
    assert [(e.text, e.value) for e in first] == [("STOP", None), ("SPEED LIMIT 50", 50.0), ("80", 80.0)]
    assert signs.process(_frame(5.0)) == []  # the same signs within repeat_after
    assert [e.text for e in signs.process(_frame(10.0))] == ["STOP", "SPEED LIMIT 50", "80"]
    assert [e.text for e in signs.process(_frame(0.0))] == ["STOP", "SPEED LIMIT 50", "80"]  # stream restarted

    # no words: every text is kept, and only SPEED LIMIT (which the value depends on) is written back
    everything = SceneText(reader=script, on_change=False, min_confidence=0.3)
    assert [e.text for e in everything.process(_frame(0.0))] == ["ST0P", "SPEED LIMIT 50", "YIELD", "PIZZA", "80"]
    assert [speed_limit(t) for t in ("30", "50 KM/H", "SPEED LIMIT 30", "37", "7", "200", "STOP")] == [
        30.0, 50.0, 30.0, None, None, None, None,
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="min_confidence"):
        SceneText(min_confidence=1.5)
