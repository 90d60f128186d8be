"""Fusion rules on synthetic events: windows, durations, cross-modal conditions, hysteresis."""

from __future__ import annotations

import pytest

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Alert, SenseEvent
from modelfarm.senses.rules import Rule, RuleEngine, normalise_text, parse_condition

DESAT = 'spo2 < 90 for 10s and (breathing_rate < 8 or speech contains "can\'t breathe")'


def reading(kind: str, t: float, value: float) -> SenseEvent:
    return SenseEvent(kind, t, "test", value=value)


def said(t: float, text: str, end: float | None = None) -> SenseEvent:
    return SenseEvent("speech", t, "test", text=text, data={"end": end if end is not None else t + 1.0})


def feed(engine: RuleEngine, events: list[SenseEvent]) -> list[Alert]:
    out: list[Alert] = []
    for e in sorted(events, key=lambda e: e.source_time):
        out += engine.observe(e)
    return out


def spo2_series(start: float, end: float, value: float, step: float = 1.0) -> list[SenseEvent]:
    n = round((end - start) / step)
    return [reading("spo2", start + i * step, value) for i in range(n + 1)]


def test_a_condition_must_hold_for_its_duration() -> None:
    engine = RuleEngine("ward", [Rule("low", "spo2 < 90 for 10s", "critical")])
    assert feed(engine, spo2_series(0, 9, 88)) == []  # 9 s is not 10
    alerts = feed(engine, spo2_series(10, 12, 88))
    assert [a.rule for a in alerts] == ["low"] and alerts[0].source_time == 10.0
    engine = RuleEngine("ward", [Rule("low", "spo2 < 90 for 10s")])
    late = feed(engine, [reading("spo2", 0, 88), reading("spo2", 9, 88), reading("spo2", 12.5, 88)])
    assert late[0].source_time == 10.0  # the hold completed at 10 s, though the reading came at 12.5 s
    assert alerts[0].severity == "critical" and alerts[0].evidence[0].value == 88


def test_a_break_in_the_condition_restarts_the_duration() -> None:
    engine = RuleEngine("ward", [Rule("low", "spo2 < 90 for 10s")])
    events = [*spo2_series(0, 6, 88), reading("spo2", 7, 93), *spo2_series(8, 17, 88)]
    assert feed(engine, events) == []
    assert len(feed(engine, [reading("spo2", 18, 88)])) == 1  # 8 -> 18


def test_cross_modal_condition_with_speech_arriving_late() -> None:
    engine = RuleEngine("ward", [Rule("desaturation", DESAT, "critical")])
    assert feed(engine, spo2_series(0, 15, 87)) == []  # low SpO2 alone is not enough
    # speech is transcribed after the fact: its source time is earlier than the clock
    alerts = engine.observe(said(13.0, "I can\u2019t breathe!", end=14.2))
    assert len(alerts) == 1 and alerts[0].source_time == pytest.approx(14.2)  # true once the words were said
    kinds = {e.kind for e in alerts[0].evidence}
    assert kinds == {"spo2", "speech"}


def test_breathing_rate_branch_of_the_same_rule() -> None:
    engine = RuleEngine("ward", [Rule("desaturation", DESAT)])
    events = [*spo2_series(0, 12, 86), reading("breathing_rate", 11.5, 6.0)]
    assert [a.rule for a in feed(engine, events)] == ["desaturation"]


def test_hysteresis_one_episode_one_alert_then_rearm() -> None:
    engine = RuleEngine("ward", [Rule("tachy", "hr > 120 for 3s", clear_after=5)])
    hr = [reading("hr", t, 130) for t in range(0, 30)]  # a 30 s episode
    assert len(feed(engine, hr)) == 1
    # a 2 s dip does not end the episode (clear_after 5 s)
    blip = [reading("hr", 30, 100), reading("hr", 31, 100), *[reading("hr", t, 130) for t in range(32, 40)]]
    assert feed(engine, blip) == []
    # 6 s of normal ends it; the next episode alerts again
    calm = [reading("hr", t, 90) for t in range(40, 47)]
    assert feed(engine, calm) == []
    assert len(feed(engine, [reading("hr", t, 135) for t in range(47, 52)])) == 1


def test_stale_readings_count_as_unknown() -> None:
    engine = RuleEngine("ward", [Rule("low", "spo2 < 90")], stale_after=5)
    assert len(feed(engine, [reading("spo2", 0, 85)])) == 1
    engine = RuleEngine("ward", [Rule("both", "spo2 < 90 and hr > 100")], stale_after=5)
    assert feed(engine, [reading("spo2", 0, 85), reading("hr", 20, 130)]) == []


def test_seen_within_and_not() -> None:
    engine = RuleEngine("street", [Rule("siren", "siren seen within 3s and not people == 0")])
    assert feed(engine, [reading("people", 0, 0), reading("siren", 1, 0.9)]) == []
    assert len(feed(engine, [reading("people", 2, 2)])) == 1
    engine = RuleEngine("street", [Rule("late", "siren seen within 3s and people >= 1")])
    assert feed(engine, [reading("siren", 0, 0.9), reading("people", 5, 1)]) == []


def test_within_window_for_comparisons_and_text() -> None:
    engine = RuleEngine("ward", [Rule("fall", 'note contains "fell" within 60s and hr > 110 within 20s')])
    events = [SenseEvent("note", 0, "t", text="Patient FELL near the bed."), reading("hr", 50, 120)]
    assert len(feed(engine, events)) == 1
    engine = RuleEngine("ward", [Rule("fall", 'note contains "fell" within 60s and hr > 110 within 20s')])
    assert feed(engine, [SenseEvent("note", 0, "t", text="fell"), reading("hr", 70, 120)]) == []


def test_text_matching_is_loose_about_case_punctuation_and_apostrophes() -> None:
    assert normalise_text("I CAN\u2019T   breathe!!") == "i can't breathe"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("spo2 <", "ends too early"),
        ("spo2 < 90 for ten", "duration"),
        ("spo2 < 90 and", "ends too early"),
        ("(spo2 < 90", "not closed"),
        ("spo2 is low", "expected <"),
        ("speech contains breathe", "quoted"),
        ("spo2 < 90 )", "unexpected"),
        ("spo2 < 90 % 3", "cannot read"),
    ],
)
def test_bad_conditions_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_condition(text, "rule 'x'")


def test_engine_lists_the_kinds_its_rules_use() -> None:
    assert RuleEngine("ward", [Rule("d", DESAT)]).kinds == {"spo2", "breathing_rate", "speech"}
