"""Voice activity: Silero VAD (ONNX, one thread) over a stream of audio chunks -> speech segments.

Silero scores 32 ms windows (512 samples at 16 kHz) with a recurrent state and the previous
window's last 64 samples as context; both are kept across chunks, so audio may arrive in chunks
of any length. Scores become segments with hysteresis, as in Silero's own `VADIterator`: a
segment starts at a window scoring >= 0.5 and ends once the score has stayed below 0.35 for
0.3 s; segments shorter than 0.25 s are dropped.

Sharing with speech-to-text: `VoiceActivity.segments(chunk)` returns the finished segments with
their audio (`Segment`), and `process` turns them into "voice" events. `SpeechToText` owns its
own `VoiceActivity` and calls `segments`, so each processor stays independent in a pipeline (no
ordering between processors); running Silero twice costs about 1% of one core.

Time is counted in samples from the first chunk's `source_time`: the stream is assumed to be
contiguous (audio is never dropped, unlike video frames).
"""

from __future__ import annotations

import importlib.util
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelfarm.errors import ConfigError, ModelSourceError
from modelfarm.senses.events import AudioChunk, Modality, SenseEvent, SourceItem

RATE = 16_000
WINDOW = 512  # samples Silero scores at a time at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window prepended to each (Silero v5+)


@dataclass(frozen=True, slots=True)
class Segment:
    """A finished stretch of speech."""

    start: float
    """Stream time (s) of the first voiced window."""
    end: float
    """Stream time (s) where the voice stopped (or where a long segment was cut)."""
    samples: np.ndarray
    """float32 16 kHz audio from `start - pad_s` to `end + pad_s` (as much of it as was heard)."""
    confidence: float
    """Mean Silero speech probability over the segment's windows."""

    @property
    def duration(self) -> float:
        return self.end - self.start


def silero_model_path() -> Path:
    """The ONNX file shipped in the `silero-vad` wheel, found without importing the package (its
    `__init__` imports torch, which we do not install)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError("silero-vad is not installed: `pip install --no-deps silero-vad`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelSourceError(f"{path} is missing: reinstall silero-vad (`pip install --no-deps silero-vad`)")
    return path


class _SileroScorer:
    """Silero's ONNX model with its recurrent state and context: one probability per 512-sample window."""

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ModelSourceError(f"cannot load Silero VAD from {model_path}: {exc}") from exc
        self._rate = np.array(RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def score(self, window: np.ndarray) -> float:
        """Speech probability of one (512,) float32 window; advances the state."""
        x = np.concatenate([self._context, window])[None, :]  # (1, 576)
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._rate})
        self._context = window[-CONTEXT:]
        return float(out[0, 0])


class _SampleBuffer:
    """Recent audio addressed by absolute sample index; older samples are dropped on request."""

    def __init__(self) -> None:
        self._parts: deque[np.ndarray] = deque()
        self._start = 0  # absolute index of the first kept sample
        self._end = 0  # absolute index one past the last sample

    def append(self, samples: np.ndarray) -> None:
        self._parts.append(samples)
        self._end += len(samples)

    def slice(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end), clamped to what is kept."""
        start, end = max(start, self._start), min(end, self._end)
        if end <= start:
            return np.zeros(0, np.float32)
        whole = np.concatenate(list(self._parts))
        return whole[start - self._start : end - self._start]

    def drop_before(self, index: int) -> None:
        """Forget whole parts that end before `index`."""
        while self._parts and self._start + len(self._parts[0]) <= index:
            self._start += len(self._parts.popleft())


class VoiceActivity:
    """Processor: audio -> "voice" events (source_time = segment start, value = duration in s)."""

    consumes: Modality = "audio"
    emits: tuple[str, ...] = ("voice",)

    def __init__(
        self,
        *,
        name: str = "vad",
        start_threshold: float = 0.5,
        end_threshold: float = 0.35,
        min_speech_s: float = 0.25,
        min_silence_s: float = 0.3,
        pad_s: float = 0.0,
        max_segment_s: float | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        """`pad_s`: audio kept around each segment's samples; `max_segment_s`: cut longer speech into
        segments of that length (speech-to-text wants bounded pieces; None never cuts)."""
        if not 0.0 < end_threshold <= start_threshold < 1.0:
            raise ConfigError(f"need 0 < end_threshold ({end_threshold}) <= start_threshold ({start_threshold}) < 1")
        self.name = name
        self.start_threshold = start_threshold
        self.end_threshold = end_threshold
        self._min_speech = round(min_speech_s * RATE)
        self._min_silence = round(min_silence_s * RATE)
        self._pad = round(pad_s * RATE)
        self._max_segment = None if max_segment_s is None else max(WINDOW, round(max_segment_s * RATE))
        self._scorer = _SileroScorer(Path(model_path) if model_path else silero_model_path())
        self._reset()

    def _reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self._scorer.reset()
        self._origin: float | None = None  # source_time of sample 0
        self._audio = _SampleBuffer()
        self._pending = np.zeros(0, np.float32)  # samples not yet scored (< one window)
        self._scored = 0  # absolute index one past the last scored sample
        self._speech_start: int | None = None  # set while inside a segment
        self._silence_start: int | None = None  # set while a segment's trailing silence is counted
        self._probs: list[float] = []  # window probabilities of the open segment

    def process(self, item: SourceItem) -> list[SenseEvent]:
        return [self._voice_event(s) for s in self.segments(item)]

    def flush(self) -> list[SenseEvent]:
        return [self._voice_event(s) for s in self.finish()]

    def segments(self, item: SourceItem) -> list[Segment]:
        """Feed one chunk; return the segments it finished (with their audio)."""
        chunk = _audio_chunk(item)
        if self._origin is None:
            self._origin = chunk.source_time
        samples = np.asarray(chunk.samples, dtype=np.float32)
        self._audio.append(samples)
        self._pending = np.concatenate([self._pending, samples])
        finished: list[Segment] = []
        n_windows = len(self._pending) // WINDOW
        for i in range(n_windows):
            segment = self._step(self._pending[i * WINDOW : (i + 1) * WINDOW])
            if segment is not None:
                finished.append(segment)
        self._pending = self._pending[n_windows * WINDOW :]
        self._forget_old_audio()
        return finished

    def finish(self) -> list[Segment]:
        """End of stream: close the open segment, if any, and reset for a new stream."""
        segment = None
        if self._speech_start is not None:
            end = self._silence_start if self._silence_start is not None else self._scored
            segment = self._close(end)
        self._reset()
        return [segment] if segment is not None else []

    def _step(self, window: np.ndarray) -> Segment | None:
        """Score one window and advance the hysteresis; return a segment if one just finished."""
        prob = self._scorer.score(window)
        window_start, self._scored = self._scored, self._scored + WINDOW
        if self._speech_start is None:
            if prob >= self.start_threshold:
                self._speech_start, self._silence_start, self._probs = window_start, None, [prob]
            return None
        self._probs.append(prob)
        if prob >= self.start_threshold:
            self._silence_start = None
        elif prob < self.end_threshold:
            if self._silence_start is None:
                self._silence_start = window_start
            if self._scored - self._silence_start >= self._min_silence:
                return self._close(self._silence_start)
        if self._too_long():
            segment = self._close(self._scored)
            self._speech_start, self._probs = self._scored, []  # speech goes on: open the next piece
            return segment
        return None

    def _too_long(self) -> bool:
        """The open segment, still voiced, has reached `max_segment_s`."""
        if self._max_segment is None or self._speech_start is None or self._silence_start is not None:
            return False
        return self._scored - self._speech_start >= self._max_segment

    def _close(self, end: int) -> Segment | None:
        """End the open segment at sample `end`; None if it was too short to count."""
        assert self._speech_start is not None and self._origin is not None
        start, probs = self._speech_start, self._probs
        self._speech_start, self._silence_start, self._probs = None, None, []
        if end - start < self._min_speech:
            return None
        return Segment(
            start=self._origin + start / RATE,
            end=self._origin + end / RATE,
            samples=self._audio.slice(start - self._pad, end + self._pad),
            confidence=float(np.mean(probs)) if probs else 0.0,
        )

    def _forget_old_audio(self) -> None:
        """Keep only the audio a future segment may still need (its leading pad)."""
        keep_from = self._scored if self._speech_start is None else self._speech_start
        self._audio.drop_before(keep_from - self._pad - WINDOW)

    def _voice_event(self, segment: Segment) -> SenseEvent:
        return SenseEvent(
            kind="voice",
            source_time=segment.start,
            processor=self.name,
            value=segment.duration,
            unit="s",
            confidence=segment.confidence,
            data={"end": segment.end},
        )


def _audio_chunk(item: SourceItem) -> AudioChunk:
    """The item as 16 kHz audio; anything else is a wiring mistake in the pipeline."""
    if not isinstance(item, AudioChunk):
        raise TypeError(f"voice activity consumes audio chunks, not {type(item).__name__}")
    if item.rate != RATE:
        raise ConfigError(f"Silero VAD needs {RATE} Hz audio, got {item.rate} Hz: resample in the audio source")
    return item
