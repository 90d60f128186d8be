"""The pipeline runtime with stand-in processors (they implement the public Processor protocol):
load shedding, pacing, explanations after the alert, errors, and the senses CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from modelfarm.senses.events import Alert, AudioChunk, Frame, Modality, SenseEvent, SourceItem, TextItem
from modelfarm.senses.pipeline import Pipeline
from modelfarm.senses.processors.text import TextProcessor
from modelfarm.senses.rules import Rule, RuleEngine
from modelfarm.senses.sources import Clock


@dataclass
class SlowCounter:
    """Counts frames, slowly: one 'brightness' reading per frame it gets to."""

    delay: float = 0.05
    name: str = "slow"
    consumes: Modality = "video"
    emits: tuple[str, ...] = ("brightness",)
    seen: list[int] = field(default_factory=list)

    def process(self, item: SourceItem) -> list[SenseEvent]:
        assert isinstance(item, Frame)
        time.sleep(self.delay)
        self.seen.append(item.index)
        return [SenseEvent("brightness", item.source_time, self.name, value=float(item.image.mean()))]

    def flush(self) -> list[SenseEvent]:
        return []


@dataclass
class AudioLevel:
    name: str = "level"
    consumes: Modality = "audio"
    emits: tuple[str, ...] = ("level",)
    chunks: int = 0

    def process(self, item: SourceItem) -> list[SenseEvent]:
        assert isinstance(item, AudioChunk)
        self.chunks += 1
        return [SenseEvent("level", item.source_time, self.name, value=float(np.abs(item.samples).max()))]

    def flush(self) -> list[SenseEvent]:
        return []


@dataclass
class Broken:
    name: str = "broken"
    consumes: Modality = "text"
    emits: tuple[str, ...] = ("nothing",)

    def process(self, item: SourceItem) -> list[SenseEvent]:
        raise RuntimeError("model file is corrupt")

    def flush(self) -> list[SenseEvent]:
        return []


def frames(n: int, fps: float) -> Iterator[Frame]:
    for i in range(n):
        yield Frame(np.full((8, 8, 3), i % 256, np.uint8), i / fps, i)


def chunks(seconds: float) -> Iterator[AudioChunk]:
    for i in range(int(seconds * 10)):
        yield AudioChunk(np.full(1600, 0.5 if 10 <= i < 20 else 0.01, np.float32), i / 10)


def run(pipe: Pipeline, sources: dict[Modality, object], realtime: bool = False) -> object:
    return asyncio.run(pipe.run(sources, Clock(realtime=realtime)))  # type: ignore[arg-type]


def test_an_overloaded_processor_drops_frames_but_no_event_or_alert_is_lost() -> None:
    slow = SlowCounter(delay=0.05)
    level = AudioLevel()
    engine = RuleEngine("t", [Rule("loud", "level > 0.4"), Rule("help", 'note contains "help"')])
    pipe = Pipeline("t", [(slow, 1, 0.0), (level, 4, 0.0), (TextProcessor(), 4, 0.0)], engine)
    notes = [TextItem("all quiet", 0.5), TextItem("Help, please!", 1.5)]
    report = run(pipe, {"video": frames(100, 50.0), "audio": chunks(3.0), "text": iter(notes)}, realtime=True)
    stage = {s.name: s for s in report.stages}  # type: ignore[attr-defined]
    assert stage["slow"].dropped > 20 and stage["slow"].items + stage["slow"].dropped == 100
    assert stage["level"].items == 30 and stage["level"].dropped == 0  # audio is never dropped
    assert stage["text"].items == 2
    assert sorted(a.rule for a in report.alerts) == ["help", "loud"]  # type: ignore[attr-defined]
    assert report.as_dict()["frames_dropped"] == stage["slow"].dropped  # type: ignore[attr-defined]


def test_every_skips_frames_by_design_not_load() -> None:
    slow = SlowCounter(delay=0.0)
    pipe = Pipeline("t", [(slow, 8, 1.0)], RuleEngine("t", []))
    report = run(pipe, {"video": frames(50, 10.0)})
    stage = report.stages[0]  # type: ignore[attr-defined]
    assert slow.seen == [0, 10, 20, 30, 40] and stage.skipped == 45 and stage.dropped == 0


def test_realtime_replay_keeps_the_streams_pace() -> None:
    t0 = time.perf_counter()
    run(Pipeline("t", [(SlowCounter(delay=0.0), 8, 0.0)], RuleEngine("t", [])), {"video": frames(10, 5.0)}, True)
    assert 1.7 < time.perf_counter() - t0 < 3.5  # 10 frames at 5 fps: 1.8 s of stream


def test_explanations_arrive_after_the_alert_and_never_delay_it() -> None:
    order: list[tuple[str, float]] = []

    async def explain(alert: Alert) -> str:
        await asyncio.sleep(0.5)
        return "because the note says so"

    def explained(alert: Alert) -> None:
        order.append(("explained", time.time()))

    engine = RuleEngine("t", [Rule("help", 'note contains "help"', explain=True)])
    pipe = Pipeline(
        "t", [(TextProcessor(), 4, 0.0)], engine, on_alert=lambda a: order.append(("alert", time.time())),
        on_explained=explained, explainer=explain, explain_rules=frozenset({"help"}),
    )  # fmt: skip
    report = run(pipe, {"text": iter([TextItem("help!", 0.0)])})
    assert [k for k, _ in order] == ["alert", "explained"] and order[1][1] - order[0][1] >= 0.4
    assert report.alerts[0].explanation == "because the note says so"  # type: ignore[attr-defined]


def test_a_failing_processor_is_reported() -> None:
    pipe = Pipeline("t", [(Broken(), 4, 0.0)], RuleEngine("t", []))
    with pytest.raises(RuntimeError, match="broken failed: model file is corrupt"):
        run(pipe, {"text": iter([TextItem("x", 0.0)])})


def test_text_processor_reads_vitals_keywords_and_pii() -> None:
    proc = TextProcessor(keywords=["shortness of breath", "fell"], pii=True, pii_ner=False)
    note = "Pt c/o Shortness of Breath, sats 86%, HR 131, BP 90/60. Call jane@hospital.org"
    events = proc.process(TextItem(note, 3.0))
    got = {(e.kind, e.value) for e in events if e.value is not None and e.kind != "pii"}
    assert got == {("spo2", 86.0), ("hr", 131.0), ("bp_sys", 90.0), ("bp_dia", 60.0)}
    assert [e.text for e in events if e.kind == "keyword"] == ["shortness of breath"]
    pii = next(e for e in events if e.kind == "pii")
    assert pii.data["kinds"] == ["EMAIL_ADDRESS"] and "jane" not in str(pii.as_dict())
    assert not [e for e in proc.process(TextItem("He felt fine", 4.0)) if e.kind == "keyword"]  # "fell" != "felt"
    assert not [e for e in proc.process(TextItem("sats 300", 5.0)) if e.kind == "spo2"]  # implausible


def test_a_microphone_without_its_driver_says_how_to_get_one() -> None:
    import importlib.util

    from modelfarm.errors import ConfigError
    from modelfarm.senses.sources import microphone_source

    if importlib.util.find_spec("sounddevice") is not None:
        pytest.skip("sounddevice is installed here: the error path cannot be shown")
    with pytest.raises(ConfigError, match="pip install sounddevice"):
        next(microphone_source())


def test_cli_prints_one_json_line_per_alert_and_a_report(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    notes = ['{"t": 1, "text": "all calm"}', '{"t": 2.5, "text": "Patient fell, sats 85%"}']
    (tmp_path / "notes.jsonl").write_text("\n".join(notes) + "\n")
    (tmp_path / "farm.toml").write_text(
        '[senses.notes]\ntext = "notes.jsonl"\n\n[[senses.notes.processors]]\ntype = "text"\nkeywords = ["fell"]\n\n'
        '[[senses.notes.rules]]\nname = "fall"\nwhen = \'keyword contains "fell"\'\nseverity = "critical"\n\n'
        '[[senses.notes.rules]]\nname = "low"\nwhen = "spo2 < 90"\n'
    )
    done = run_cli("senses", "run", "notes", "--farm", str(tmp_path / "farm.toml"), "--fast", "--json",
                   "--report", str(tmp_path / "report.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(a["rule"] for a in alerts) == ["fall", "low"] and all(a["source_time"] == 2.5 for a in alerts)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["events"] >= 4 and report["stages"][0]["items"] == 2
    bad = run_cli("senses", "run", "nope", "--farm", str(tmp_path / "farm.toml"))
    assert bad.returncode == 2 and "no sense pipeline 'nope'" in bad.stderr
