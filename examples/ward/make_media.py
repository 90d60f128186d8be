"""Generate the ward demo's media from scenario.py: monitor video, patient audio, nurse notes.

    python examples/ward/make_media.py [--out examples/ward/media] [--fps 5]

Writes `monitor.avi` (a vital-signs monitor, MJPG, 5 fps), `patient.wav` (16 kHz mono: quiet
breathing with the patient's words at the scripted times, spoken by espeak-ng) and
`notes.jsonl` (the nurse's notes). Deterministic; a few seconds on 2 cores. The media are not
committed: regenerate them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16_000


def breathing(duration: float, per_min: float, seed: int = 7) -> np.ndarray:
    """Soft breathing: band-limited noise whose loudness rises and falls `per_min` times a minute."""
    rng = np.random.default_rng(seed)
    n = int(duration * RATE)
    noise = rng.standard_normal(n).astype(np.float32)
    kernel = np.hanning(64).astype(np.float32)
    noise = np.convolve(noise, kernel / kernel.sum(), mode="same")  # a breathy hiss, not white noise
    t = np.arange(n) / RATE
    envelope = np.clip(np.sin(2 * np.pi * (per_min / 60.0) * t), 0, None) ** 2
    return (0.05 * envelope * noise / (np.abs(noise).max() + 1e-9)).astype(np.float32)


def _scenario() -> ModuleType:
    """scenario.py next to this file, loaded by path (another demo's `scenario` may be imported)."""
    spec = importlib.util.spec_from_file_location("ward_scenario", HERE / "scenario.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make(out: Path, fps: float) -> list[Path]:
    scenario = _scenario()
    from modelfarm.senses.monitor_video import write_monitor_video
    from modelfarm.senses.tts import speak, write_wav

    out.mkdir(parents=True, exist_ok=True)
    video = out / "monitor.avi"
    write_monitor_video(video, scenario.MONITOR, fps=fps, duration=scenario.DURATION)
    audio = breathing(scenario.DURATION, scenario.BREATHS_PER_MIN)
    for at, words in scenario.SPEECH:
        voice = speak(words, pad_s=0.0)
        start = int(at * RATE)
        audio[start : start + len(voice)] += 0.6 * voice[: len(audio) - start]
    wav = out / "patient.wav"
    write_wav(wav, np.clip(audio, -1, 1))
    notes = out / "notes.jsonl"
    lines = [json.dumps({"t": t, "text": text, "author": "nurse"}) for t, text in scenario.NOTES]
    notes.write_text("\n".join(lines) + "\n")
    return [video, wav, notes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "media", help="folder for the media")
    ap.add_argument("--fps", type=float, default=5.0, help="video frame rate")
    args = ap.parse_args()
    for path in make(args.out, args.fps):
        print(path)


if __name__ == "__main__":
    main()
