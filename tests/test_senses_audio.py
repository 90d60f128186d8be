"""Audio senses on generated audio: espeak-ng speech, synthetic sirens and breathing noise.

Every stream is fed in chunks, as a live source would deliver it, and ends with flush().
Whisper tiny.en loads once for the module.
"""

from __future__ import annotations

import re
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelfarm.senses.events import AudioChunk, SenseEvent
from modelfarm.senses.processors.asr import SpeechToText
from modelfarm.senses.processors.base import Processor
from modelfarm.senses.processors.signals import BreathingRate, SirenDetector
from modelfarm.senses.processors.vad import VoiceActivity
from modelfarm.senses.tts import speak, write_wav

RATE = 16_000


def feed(processor: Processor, samples: np.ndarray, chunk: int = 1600) -> list[SenseEvent]:
    """Stream `samples` through `processor` in chunks of `chunk` samples, then flush it."""
    events: list[SenseEvent] = []
    for i in range(0, len(samples), chunk):
        events += processor.process(AudioChunk(samples[i : i + chunk], source_time=i / RATE))
    return events + processor.flush()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.float32)


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(round(seconds * RATE))).astype(np.float32)


def words(text: str) -> str:
    """Lowercase, punctuation stripped: "I can't breathe." -> "i cant breathe"."""
    return re.sub(r"[^a-z ]", "", text.lower())


@pytest.fixture(scope="module")
def cant_breathe() -> np.ndarray:
    return speak("I can't breathe", pad_s=0.0)


@pytest.fixture(scope="module")
def asr() -> Iterator[SpeechToText]:
    # The words a distress pipeline listens for go in as hotwords: without them tiny.en hears
    # espeak's "breathe" as "dream" in about 3 utterances of 4 (espeak's pitch varies per call).
    yield SpeechToText(cpu_threads=2, hotwords="breathe, doctor")


# --- text to speech -----------------------------------------------------------------------------


def test_speak_gives_padded_16khz_speech(tmp_path: Path) -> None:
    audio = speak("I can't breathe", wpm=120, pad_s=0.5)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.8 < len(audio) / RATE < 4.0  # about a second of speech and 0.5 s of silence each side
    pad = RATE // 2
    assert not audio[:pad].any() and not audio[-pad:].any()
    assert np.sqrt(np.mean(audio[pad:-pad] ** 2)) > 0.02  # clearly audible
    assert np.abs(audio).max() <= 1.0

    path = tmp_path / "speech.wav"
    write_wav(path, audio)
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        assert wav.getnframes() == len(audio)


# --- voice activity -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [160, 512, 1600])
def test_vad_finds_the_spoken_segment(cant_breathe: np.ndarray, chunk: int) -> None:
    audio = np.concatenate([silence(1.5), cant_breathe, silence(1.5)])
    voiced = np.nonzero(np.abs(audio) > 0.01)[0]
    truth_start, truth_end = voiced[0] / RATE, voiced[-1] / RATE

    events = feed(VoiceActivity(), audio, chunk)

    assert [e.kind for e in events] == ["voice"]
    assert events[0].source_time == pytest.approx(truth_start, abs=0.2)
    assert events[0].data["end"] == pytest.approx(truth_end, abs=0.2)
    assert events[0].value == pytest.approx(events[0].data["end"] - events[0].source_time)


@pytest.mark.parametrize("audio", [silence(5.0), noise(5.0, level=0.003)], ids=["silence", "low-noise"])
def test_vad_stays_quiet_without_speech(audio: np.ndarray) -> None:
    assert feed(VoiceActivity(), audio, 512) == []


# --- speech to text -----------------------------------------------------------------------------


def test_asr_transcribes_each_utterance(asr: SpeechToText) -> None:
    audio = np.concatenate([speak("I can't breathe", wpm=120), speak("call the doctor now", wpm=120)])

    events = feed(asr, audio)

    assert [e.kind for e in events] == ["speech", "speech"]
    first, second = events
    assert "breathe" in words(first.text or "")
    assert "doctor" in words(second.text or "")
    assert 0.3 < first.source_time < first.data["end"] < second.source_time < second.data["end"] < len(audio) / RATE
    assert all(0.0 < (e.confidence or 0.0) <= 1.0 and e.data["asr_seconds"] > 0 for e in events)


# --- sirens -------------------------------------------------------------------------------------


def wail(seconds: float, low: float = 650.0, high: float = 1500.0, sweeps_per_s: float = 0.33) -> np.ndarray:
    """A tone whose frequency swings sinusoidally between `low` and `high` Hz."""
    t = np.arange(round(seconds * RATE)) / RATE
    hz = (low + high) / 2 + (high - low) / 2 * np.sin(2 * np.pi * sweeps_per_s * t)
    return (0.3 * np.sin(2 * np.pi * np.cumsum(hz) / RATE)).astype(np.float32)


@pytest.mark.parametrize(("sweeps_per_s", "pattern"), [(0.33, "wail"), (3.0, "yelp")])
def test_siren_detects_a_sweeping_tone_in_noise(sweeps_per_s: float, pattern: str) -> None:
    siren = wail(8.0, sweeps_per_s=sweeps_per_s) + noise(8.0, 0.05, seed=2)
    audio = np.concatenate([noise(2.0, 0.05, seed=1), siren, noise(2.0, 0.05, seed=3)])

    events = feed(SirenDetector(), audio)

    assert [e.kind for e in events] == ["siren"]  # one episode, one event
    assert events[0].source_time == pytest.approx(2.0, abs=2.0)
    assert 0.5 < (events[0].value or 0.0) <= 1.0
    assert events[0].data["pattern"] == pattern


@pytest.mark.parametrize(("gap_s", "episodes"), [(1.0, 1), (3.0, 2)])
def test_siren_fires_again_only_after_a_real_pause(gap_s: float, episodes: int) -> None:
    audio = np.concatenate([wail(5.0), noise(gap_s, 0.05), wail(5.0), noise(1.0, 0.05, seed=4)])

    events = feed(SirenDetector(), audio)

    assert len(events) == episodes
    assert events[-1].source_time == pytest.approx(0.0 if episodes == 1 else 5.0 + gap_s, abs=0.5)


@pytest.fixture(scope="module")
def sentences() -> np.ndarray:
    return np.concatenate(
        [speak(s) for s in ["Help me, I think I am having a heart attack.", "Please call the nurse, I can't breathe."]]
    )


@pytest.mark.parametrize("kind", ["tone", "white-noise", "speech"])
def test_siren_ignores_steady_tone_noise_and_speech(kind: str, sentences: np.ndarray) -> None:
    t = np.arange(8 * RATE) / RATE
    audio = {
        "tone": (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32),
        "white-noise": noise(8.0, 0.2),
        "speech": sentences,
    }[kind]
    assert feed(SirenDetector(), audio) == []


# --- breathing ----------------------------------------------------------------------------------


def breathing(per_min: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts (inhale and exhale sounds) swelling and fading `per_min` times a minute."""
    t = np.arange(round(seconds * RATE)) / RATE
    phase = (t * per_min / 60) % 1.0
    swell = np.where(phase < 0.4, np.sin(np.pi * phase / 0.4) ** 2, 0.0)  # breath sound for 40% of each cycle
    return (0.2 * swell * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("per_min", [12.0, 6.0])
def test_breathing_rate_from_noise_bursts(per_min: float) -> None:
    audio = breathing(per_min, 24.0) + noise(24.0, 0.01, seed=5)

    events = feed(BreathingRate(every_s=2.0), audio)

    assert len(events) >= 2  # window full at 20 s, then every 2 s
    assert all(e.kind == "breathing_rate" and e.unit == "/min" for e in events)
    assert all(e.value == pytest.approx(per_min, abs=1.5) for e in events)
    assert events[0].source_time == pytest.approx(20.0, abs=0.1)


def test_breathing_rate_silent_on_silence() -> None:
    assert feed(BreathingRate(), silence(24.0)) == []
