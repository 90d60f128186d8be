"""Sources on one clock: video, audio and text, replayed in real time or as fast as possible.

Each source is an iterator of items (`Frame`, `AudioChunk`, `TextItem`) whose `source_time`
counts seconds from the start of the stream. `Clock` paces them: in real time, an item is
released when the wall clock reaches `start + source_time`, so a 5 fps file arrives at 5 fps
and audio and video stay in step; otherwise items are released as fast as they are read.
Live inputs (a camera, a microphone, HTTP text) are paced by the world and stamp items with
the clock's current stream time.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelfarm.errors import ConfigError, InvalidRequestError
from modelfarm.senses.events import AudioChunk, Frame, SourceItem, TextItem

AUDIO_RATE = 16_000
AUDIO_CHUNK_S = 0.1


class Clock:
    """The pipeline's stream clock: stream time 0.0 is the moment `start()` was called."""

    def __init__(self, *, realtime: bool) -> None:
        self.realtime = realtime
        self.started_at = 0.0  # wall clock (time.time()) at stream time 0
        self._t0 = 0.0
        self._stop = threading.Event()

    def start(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def now(self) -> float:
        """Stream time now (seconds since start)."""
        return time.perf_counter() - self._t0

    def wait_until(self, source_time: float) -> bool:
        """In real time, sleep until `source_time`; False when the pipeline is stopping."""
        if self.realtime:
            delay = source_time - self.now()
            if delay > 0:
                return not self._stop.wait(delay)
        return not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


def video_source(spec: str | int, *, fps: float | None = None) -> Iterator[Frame]:
    """Frames from a video file, a folder of images (sorted by name), or a camera index.

    A folder has no frame rate of its own: `fps` (default 5) spaces its frames. A file's own
    frame rate is used unless `fps` is given. A camera is live: frames are stamped on arrival.
    """
    import cv2

    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        yield from _camera(int(spec))
        return
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        if not files:
            raise ConfigError(f"video folder {path} holds no .png/.jpg/.bmp frames")
        step = 1.0 / (fps or 5.0)
        for i, f in enumerate(files):
            image = cv2.imread(str(f))
            if image is None:
                raise ConfigError(f"cannot read image {f}")
            yield Frame(image, i * step, i)
        return
    if not path.exists():
        raise ConfigError(f"video file {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConfigError(f"OpenCV cannot open video {path} (supported: the codecs of opencv-python-headless)")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 5.0
    i = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            yield Frame(image, i / rate, i)
            i += 1
    finally:
        cap.release()


def _camera(index: int) -> Iterator[Frame]:
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise ConfigError(f"no camera at index {index}")
    t0 = time.perf_counter()
    i = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            yield Frame(image, time.perf_counter() - t0, i)
            i += 1
    finally:
        cap.release()


def read_wav(path: str | Path) -> np.ndarray:
    """A WAV file as float32 mono 16 kHz (PCM 8/16/32-bit; other rates resampled)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"audio file {path} does not exist")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{path} is not a PCM WAV file: {exc}") from exc
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise ConfigError(f"{path}: {8 * width}-bit samples are not supported (use 16-bit PCM)")
    data = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    if width == 1:
        data = (data - 128.0) / 128.0
    else:
        data /= float(2 ** (8 * width - 1))
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    if rate != AUDIO_RATE:
        from scipy.signal import resample_poly

        g = np.gcd(rate, AUDIO_RATE)
        data = resample_poly(data, AUDIO_RATE // g, rate // g).astype(np.float32)
    return data


def audio_source(samples: np.ndarray, *, chunk_s: float = AUDIO_CHUNK_S) -> Iterator[AudioChunk]:
    """16 kHz mono samples cut into chunks (0.1 s: what a microphone callback would give)."""
    n = max(1, int(AUDIO_RATE * chunk_s))
    for start in range(0, len(samples), n):
        yield AudioChunk(samples[start : start + n], start / AUDIO_RATE)


def microphone_source(device: str | None = None, *, chunk_s: float = AUDIO_CHUNK_S) -> Iterator[AudioChunk]:
    """Live audio from a microphone (16 kHz mono), stamped on arrival. Needs the optional
    `sounddevice` package (PortAudio); `device` is a name or index (default: the system's)."""
    try:
        import sounddevice  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, OSError) as exc:
        raise ConfigError(
            "a microphone source needs the `sounddevice` package and PortAudio: "
            "`pip install sounddevice` (and `apt install libportaudio2`), or give a WAV file"
        ) from exc
    frames: queue.Queue[np.ndarray] = queue.Queue()
    n = max(1, int(AUDIO_RATE * chunk_s))
    dev: str | int | None = int(device) if device is not None and device.isdigit() else device

    def callback(data: np.ndarray, _frames: int, _time: object, _status: object) -> None:
        frames.put(data[:, 0].astype(np.float32).copy())

    t0 = time.perf_counter()
    with sounddevice.InputStream(samplerate=AUDIO_RATE, channels=1, blocksize=n, device=dev, callback=callback):
        while True:
            samples = frames.get()
            yield AudioChunk(samples, time.perf_counter() - t0 - len(samples) / AUDIO_RATE)


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    at: float
    author: str | None


def text_source(path: str | Path) -> Iterator[TextItem]:
    """Lines of a JSONL file: `{"t": seconds, "text": "...", "author": "..."}` ("t" optional:
    then one line a second), or of stdin when `path` is "-" (stamped on arrival)."""
    if str(path) == "-":
        t0 = time.perf_counter()
        for raw in sys.stdin:
            if raw.strip():
                yield TextItem(raw.strip(), time.perf_counter() - t0)
        return
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"text file {path} does not exist")
    lines: list[_Line] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            text = str(obj["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f'{path}:{n}: expected a JSON object with "text" (and "t" in seconds)') from exc
        lines.append(_Line(text, float(obj.get("t", len(lines))), obj.get("author")))
    for line in sorted(lines, key=lambda x: x.at):
        yield TextItem(line.text, line.at, line.author)


class LiveText:
    """Text pushed while the pipeline runs (POST /v1/senses/{pipeline}/text), stamped with the
    stream clock on arrival."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._queue: queue.Queue[TextItem | None] = queue.Queue()

    def push(self, text: str, author: str | None = None) -> TextItem:
        if not text.strip():
            raise InvalidRequestError("text must not be empty", param="text")
        if len(text) > 10_000:
            raise InvalidRequestError("text is longer than 10,000 characters", param="text")
        item = TextItem(text.strip(), self.clock.now(), author)
        self._queue.put(item)
        return item

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[SourceItem]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item
