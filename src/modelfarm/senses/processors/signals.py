"""Signal detectors on raw audio, numpy and scipy only: sirens and breathing rate.

Both work at any sample rate (taken from the first chunk) and keep their state across chunks,
so audio may arrive in chunks of any length; time is counted in samples from the first chunk's
`source_time` (the stream is assumed contiguous).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from modelfarm.errors import ConfigError
from modelfarm.senses.events import AudioChunk, Modality, SenseEvent, SourceItem


def _audio_chunk(item: SourceItem, processor: str) -> AudioChunk:
    if not isinstance(item, AudioChunk):
        raise TypeError(f"{processor} consumes audio chunks, not {type(item).__name__}")
    return item


# --- sirens -----------------------------------------------------------------------------------

FRAMES_PER_S = 64  # spectral frames per second of audio (hop 250 samples at 16 kHz)


@dataclass(frozen=True, slots=True)
class _Track:
    """Per-frame measurements of the band's dominant tone."""

    hz: np.ndarray  # (F,) peak frequency in the band, parabolic-interpolated
    tonality: np.ndarray  # (F,) share of the frame's energy (above 100 Hz) in the peak and its 2nd, 3rd harmonics
    loud: np.ndarray  # (F,) bool: band energy above a -60 dBFS floor


class _BandTracker:
    """Short-time spectra (Hann, ~32 ms frames, 64 a second) -> the dominant tone in a band, frame by frame.

    Tonality is measured against the whole spectrum, not the band: voiced speech also has sharp
    peaks in 500-2000 Hz (one harmonic near a formant), but most of its energy lies in the
    fundamental and low harmonics below 500 Hz, while a siren's tone carries nearly all of it.
    """

    def __init__(self, rate: int, low_hz: float, high_hz: float, peak_bins: int = 2) -> None:
        self.rate = rate
        self.hop = round(rate / FRAMES_PER_S)
        self.size = 1 << int(np.ceil(np.log2(0.032 * rate)))  # 512 at 16 kHz: 31 Hz bins
        freqs = np.fft.rfftfreq(self.size, 1.0 / rate)
        self._band = np.nonzero((freqs >= low_hz) & (freqs <= high_hz))[0]
        self._counted = freqs >= 100.0  # rumble below 100 Hz does not count against tonality
        self._bin_hz = float(freqs[1])
        self._window = np.hanning(self.size).astype(np.float32)
        self._peak_bins = peak_bins  # a Hann window spreads a pure tone over +-2 bins
        self._pending = np.zeros(0, np.float32)
        self._floor = (1e-3 * self.size / 4) ** 2  # band power of a -60 dBFS tone (scaled like the FFT)

    def push(self, samples: np.ndarray) -> _Track:
        """Frames completed by these samples (possibly none)."""
        self._pending = np.concatenate([self._pending, samples])
        n = 0 if len(self._pending) < self.size else 1 + (len(self._pending) - self.size) // self.hop
        if n == 0:
            return _Track(np.zeros(0), np.zeros(0), np.zeros(0, bool))
        frames = np.lib.stride_tricks.sliding_window_view(self._pending, self.size)[:: self.hop][:n]  # (F, size)
        self._pending = self._pending[n * self.hop :]
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2  # (F, size/2 + 1)
        return self._measure(power)

    def _measure(self, power: np.ndarray) -> _Track:
        band = power[:, self._band]  # (F, B)
        peak = self._band[np.argmax(band, axis=1)]  # (F,) bin index in the full spectrum
        tone = sum(self._energy_near(power, k * peak) for k in (1, 2, 3))
        total = power[:, self._counted].sum(axis=1) + 1e-12
        return _Track(hz=self._interpolate(power, peak), tonality=tone / total, loud=band.sum(axis=1) > self._floor)

    def _energy_near(self, power: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Energy in bins centre-peak_bins..centre+peak_bins of each frame (bins past Nyquist count as 0)."""
        rows, n_bins = np.arange(len(power)), power.shape[1]
        out = np.zeros(len(power))
        for offset in range(-self._peak_bins, self._peak_bins + 1):
            idx = centre + offset
            out += np.where(idx < n_bins, power[rows, np.clip(idx, 0, n_bins - 1)], 0.0)
        return out

    def _interpolate(self, power: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """Peak frequency (Hz) refined by a parabola through the log power of the peak bin and its neighbours."""
        rows = np.arange(len(power))
        left, mid, right = (np.log(power[rows, peak + d] + 1e-12) for d in (-1, 0, 1))
        curvature = left - 2 * mid + right
        safe = np.where(np.abs(curvature) > 1e-9, curvature, -1.0)
        shift = np.where(np.abs(curvature) > 1e-9, 0.5 * (left - right) / safe, 0.0)
        return np.asarray((peak + np.clip(shift, -0.5, 0.5)) * self._bin_hz)


def _reversals(hz: np.ndarray, min_swing_hz: float) -> int:
    """How often the track turns (up -> down or down -> up) by at least `min_swing_hz` (a zigzag count)."""
    if len(hz) == 0:
        return 0
    turns, direction = 0, 0
    low = high = float(hz[0])
    for f in hz[1:]:
        value = float(f)
        low, high = min(low, value), max(high, value)
        if direction >= 0 and high - value >= min_swing_hz:  # came down from a peak
            turns += direction > 0
            direction, low = -1, value
        elif direction <= 0 and value - low >= min_swing_hz:  # came up from a trough
            turns += direction < 0
            direction, high = 1, value
    return turns


class SirenDetector:
    """Processor: audio -> "siren" events (value = confidence 0..1) for wailing or yelping sirens.

    Every 0.25 s the last second of 32 ms spectra is judged *tonal* when most frames carry one
    dominant, loud tone in 500-2000 Hz (it and its harmonics hold most of the frame's energy) and
    the tone moves smoothly. A run of tonal windows is a siren once it has lasted `min_on_s` and
    its frequency has swept across at least `min_span_hz` and turned at least once (up and down:
    a steady tone or a single glide is not a siren). One event per episode, with source_time at
    the run's first tonal frame; it fires again only after `min_off_s` without a tonal window.
    Confidence is the run's mean tonality; data holds the pattern ("wail" below 1.5 sweeps a
    second, else "yelp"), the sweep rate and the frequency range heard so far.
    """

    consumes: Modality = "audio"
    emits: tuple[str, ...] = ("siren",)

    def __init__(
        self,
        *,
        name: str = "siren",
        low_hz: float = 500.0,
        high_hz: float = 2000.0,
        min_tonality: float = 0.5,
        min_tonal_share: float = 0.6,
        max_jump_hz: float = 200.0,
        min_span_hz: float = 300.0,
        min_on_s: float = 1.5,
        min_off_s: float = 2.0,
        history_s: float = 8.0,
    ) -> None:
        """`min_tonality`: a frame is tonal when its tone holds this share of its energy;
        `min_tonal_share`: a window is tonal when this share of its frames are; `max_jump_hz`:
        the largest median frame-to-frame move of a smooth tone; `history_s`: how much of a run
        the sweep test looks at."""
        if not 0 < low_hz < high_hz:
            raise ConfigError(f"need 0 < low_hz ({low_hz}) < high_hz ({high_hz})")
        self.name = name
        self.low_hz, self.high_hz = low_hz, high_hz
        self.min_tonality = min_tonality
        self.min_tonal_share = min_tonal_share
        self.max_jump_hz = max_jump_hz
        self.min_span_hz = min_span_hz
        self._min_on = round(min_on_s * FRAMES_PER_S)
        self._min_off = round(min_off_s * FRAMES_PER_S)
        self._history = max(round(history_s * FRAMES_PER_S), self._min_on + FRAMES_PER_S)
        self._reset()

    def _reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self._origin = 0.0
        self._tracker: _BandTracker | None = None
        self._frames = 0  # frames measured so far
        self._hz: deque[float] = deque(maxlen=self._history)
        self._tonality: deque[float] = deque(maxlen=self._history)  # 0 for frames below the loudness floor
        self._run_start: int | None = None  # first tonal frame of the current run of tonal windows
        self._last_tonal = 0  # last frame of a tonal window
        self._active = False

    def process(self, item: SourceItem) -> list[SenseEvent]:
        chunk = _audio_chunk(item, "siren detection")
        if self._tracker is None:
            self._origin, self._tracker = chunk.source_time, _BandTracker(chunk.rate, self.low_hz, self.high_hz)
        track = self._tracker.push(np.asarray(chunk.samples, dtype=np.float32))
        events: list[SenseEvent] = []
        for hz, tonality, loud in zip(track.hz, track.tonality, track.loud, strict=True):
            self._hz.append(float(hz))
            self._tonality.append(float(tonality) if loud else 0.0)
            self._frames += 1
            if self._frames % (FRAMES_PER_S // 4) == 0 and self._frames >= FRAMES_PER_S:  # every 0.25 s
                event = self._judge()
                if event is not None:
                    events.append(event)
        return events

    def flush(self) -> list[SenseEvent]:
        """Nothing is held back (an event is emitted as soon as a siren qualifies); reset for a new stream."""
        self._reset()
        return []

    def _recent(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """The last `frames` frequencies (Hz) and tonal flags."""
        hz = np.fromiter(self._hz, float)[-frames:]
        tonal = np.fromiter(self._tonality, float)[-frames:] >= self.min_tonality
        return hz, tonal

    def _judge(self) -> SenseEvent | None:
        """Judge the last second; return an event when a siren episode begins."""
        now = self._frames
        hz, tonal = self._recent(FRAMES_PER_S)
        if _is_tonal_window(hz, tonal, self.min_tonal_share, self.max_jump_hz):
            if self._run_start is None:
                self._run_start = now - FRAMES_PER_S + int(np.argmax(tonal))
            self._last_tonal = now
        else:
            self._run_start = None
            if self._active and now - self._last_tonal >= self._min_off:
                self._active = False
        if self._active or self._run_start is None or now - self._run_start < self._min_on:
            return None
        return self._siren_event(now - self._run_start)

    def _siren_event(self, run: int) -> SenseEvent | None:
        """Check that the run (its last `history_s` of it) sweeps up and down; if so the episode begins."""
        assert self._run_start is not None
        run = min(run, len(self._hz))
        hz, tonal = self._recent(run)
        track = _median3(hz[tonal])
        if len(track) < 2:
            return None
        low, high = (float(v) for v in np.percentile(track, [5, 95]))
        turns = _reversals(track, self.min_span_hz / 2)
        if high - low < self.min_span_hz or turns < 1:
            return None
        self._active = True
        assert self._tracker is not None
        sweep_hz = turns / 2 / (run / FRAMES_PER_S)  # up-and-down cycles per second
        confidence = float(np.mean(np.fromiter(self._tonality, float)[-run:]))
        return SenseEvent(
            kind="siren",
            source_time=self._origin + self._run_start * self._tracker.hop / self._tracker.rate,
            processor=self.name,
            value=confidence,
            confidence=confidence,
            data={
                "pattern": "yelp" if sweep_hz >= 1.5 else "wail",
                "sweep_hz": round(sweep_hz, 2),
                "low_hz": round(low),
                "high_hz": round(high),
            },
        )


def _is_tonal_window(hz: np.ndarray, tonal: np.ndarray, min_share: float, max_jump_hz: float) -> bool:
    """Most frames tonal, and the tone moves smoothly between them (speech jumps between harmonics)."""
    if tonal.mean() < min_share:
        return False
    return bool(np.median(np.abs(np.diff(hz[tonal]))) <= max_jump_hz)


def _median3(x: np.ndarray) -> np.ndarray:
    """Three-point median: drops single-frame outliers from a frequency track."""
    if len(x) < 3:
        return x
    stacked = np.stack([x[:-2], x[1:-1], x[2:]])
    return np.concatenate([x[:1], np.median(stacked, axis=0), x[-1:]])


# --- breathing rate ---------------------------------------------------------------------------

ENVELOPE_HZ = 20  # envelope samples per second


class _Envelope:
    """Streaming amplitude envelope: RMS over 50 ms blocks (20 Hz), then a 2 Hz low-pass whose state
    carries across chunks, so the result does not depend on how the audio was chunked."""

    def __init__(self, rate: int, cutoff_hz: float = 2.0) -> None:
        from scipy.signal import butter, sosfilt_zi

        self._block = rate // ENVELOPE_HZ  # 800 samples at 16 kHz
        self._sos = butter(2, cutoff_hz, btype="low", fs=ENVELOPE_HZ, output="sos")
        self._zi = np.zeros_like(sosfilt_zi(self._sos))  # filter starts from rest (silence)
        self._pending = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Envelope values completed by these samples (possibly none)."""
        from scipy.signal import sosfilt

        self._pending = np.concatenate([self._pending, samples])
        n = len(self._pending) // self._block
        if n == 0:
            return np.zeros(0)
        blocks = self._pending[: n * self._block].reshape(n, self._block).astype(np.float64)  # (n, block)
        self._pending = self._pending[n * self._block :]
        rms = np.sqrt(np.mean(blocks**2, axis=1))
        smooth, self._zi = sosfilt(self._sos, rms, zi=self._zi)
        return np.asarray(smooth)


@dataclass(frozen=True, slots=True)
class _Periodicity:
    period_s: float
    strength: float  # correlation of the envelope with itself one period later, 0..1


def _dominant_period(envelope: np.ndarray, min_s: float, max_s: float) -> _Periodicity | None:
    """The envelope's strongest repeat within [min_s, max_s], from its normalised autocorrelation.

    Each lag's value is the Pearson correlation of the envelope with itself shifted by that lag
    (so long lags are not penalised for their shorter overlap). Of the local maxima, the shortest
    lag within 90% of the best wins: a rhythm of period T also repeats at 2T.
    """
    x = envelope - envelope.mean()
    if np.std(x) < 1e-6:
        return None
    lags = np.arange(max(1, int(min_s * ENVELOPE_HZ)) - 1, int(max_s * ENVELOPE_HZ) + 2)
    lags = lags[lags < len(x) - 2]
    corr = np.array([_pearson(x[:-lag], x[lag:]) for lag in lags])
    peaks = [i for i in range(1, len(corr) - 1) if corr[i] >= corr[i - 1] and corr[i] > corr[i + 1]]
    if not peaks:
        return None
    best = max(corr[i] for i in peaks)
    i = next(i for i in peaks if corr[i] >= 0.9 * best)
    left, mid, right = corr[i - 1], corr[i], corr[i + 1]  # parabola through the peak: sub-sample lag
    curvature = left - 2 * mid + right
    shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return _Periodicity(period_s=float(lags[i] + shift) / ENVELOPE_HZ, strength=float(max(0.0, mid)))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / denom if denom > 0 else 0.0


class BreathingRate:
    """Processor: audio -> "breathing_rate" events (value in breaths a minute, confidence 0..1).

    Breath sounds are noise whose loudness rises and falls with each breath, so the rate is the
    dominant period of the amplitude envelope (20 Hz, low-passed at 2 Hz) over the last
    `window_s`, searched between 6 and 60 breaths a minute (0.1-1.0 Hz). Every `every_s` once
    the window is full, it emits the rate with confidence = the envelope's autocorrelation at
    that period, or nothing when the envelope is flat (silence) or the best periodicity is
    weaker than `min_confidence`. source_time is the end of the window.
    """

    consumes: Modality = "audio"
    emits: tuple[str, ...] = ("breathing_rate",)

    def __init__(
        self,
        *,
        name: str = "breathing",
        window_s: float = 20.0,
        every_s: float = 2.0,
        min_per_min: float = 6.0,
        max_per_min: float = 60.0,
        min_confidence: float = 0.5,
    ) -> None:
        if not 0 < min_per_min < max_per_min:
            raise ConfigError(f"need 0 < min_per_min ({min_per_min}) < max_per_min ({max_per_min})")
        if window_s * min_per_min / 60 < 1.5:
            raise ConfigError(f"window_s={window_s} is too short to see 1.5 breaths at {min_per_min}/min")
        self.name = name
        self.window_s = window_s
        self.min_per_min, self.max_per_min = min_per_min, max_per_min
        self.min_confidence = min_confidence
        self._window = round(window_s * ENVELOPE_HZ)
        self._every = max(1, round(every_s * ENVELOPE_HZ))
        self._reset()

    def _reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self._origin = 0.0
        self._envelope: _Envelope | None = None
        self._values: deque[float] = deque(maxlen=self._window)
        self._count = 0  # envelope values so far

    def process(self, item: SourceItem) -> list[SenseEvent]:
        chunk = _audio_chunk(item, "breathing rate")
        if self._envelope is None:
            self._origin, self._envelope = chunk.source_time, _Envelope(chunk.rate)
        events: list[SenseEvent] = []
        for value in self._envelope.push(np.asarray(chunk.samples, dtype=np.float32)):
            self._values.append(float(value))
            self._count += 1
            if self._count >= self._window and (self._count - self._window) % self._every == 0:
                event = self._estimate()
                if event is not None:
                    events.append(event)
        return events

    def flush(self) -> list[SenseEvent]:
        """Rates are emitted on schedule, none is held back; reset for a new stream."""
        self._reset()
        return []

    def _estimate(self) -> SenseEvent | None:
        found = _dominant_period(np.fromiter(self._values, float), 60 / self.max_per_min, 60 / self.min_per_min)
        if found is None or found.strength < self.min_confidence:
            return None
        return SenseEvent(
            kind="breathing_rate",
            source_time=self._origin + self._count / ENVELOPE_HZ,
            processor=self.name,
            value=60 / found.period_s,
            unit="/min",
            confidence=found.strength,
            data={"period_s": round(found.period_s, 2), "window_s": self.window_s},
        )
