"""The ward demo end to end: generated monitor video, speech and notes through real OCR, VAD,
Whisper, breathing and text processors; the rules must raise the scripted alerts at the
scripted times (examples/ward/scenario.py), once each."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelfarm.manifest import load_manifest
from modelfarm.senses.build import build, open_sources
from modelfarm.senses.pipeline import Pipeline
from modelfarm.senses.sources import Clock
from tests.conftest import example_module

WARD = Path(__file__).resolve().parents[1] / "examples" / "ward"


def test_the_ward_demo_raises_its_alerts_at_the_expected_times(tmp_path: Path) -> None:
    scenario, make_media = example_module("ward", "scenario"), example_module("ward", "make_media")
    video, audio, notes = make_media.make(tmp_path, fps=5.0)
    manifest = load_manifest(WARD / "farm.toml")
    spec, processors, engine = build(manifest, "ward")
    sources = open_sources(spec, manifest.base_dir, video=str(video), audio=str(audio), text=str(notes))
    report = asyncio.run(Pipeline("ward", processors, engine).run(sources, Clock(realtime=False)))

    fired = {a.rule: a for a in report.alerts}
    assert sorted(a.rule for a in report.alerts) == sorted(r for r, _, _ in scenario.EXPECTED)  # one per episode
    for rule, earliest, latest in scenario.EXPECTED:
        assert earliest <= fired[rule].source_time <= latest, (rule, fired[rule].source_time)
    desat = fired["desaturation"]
    assert desat.severity == "critical" and {e.kind for e in desat.evidence} == {"spo2", "speech"}
    assert report.as_dict()["frames_dropped"] == 0  # a fast replay waits for its processors
