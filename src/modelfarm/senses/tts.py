"""Speech synthesis for demos and tests: espeak-ng from the `espeakng-loader` wheel, through ctypes.

Why this and not a neural voice: the wheel bundles `libespeak-ng.so` and its data (20 MB), so
speech can be generated offline with no system package and no model download; the robotic
voice is enough to drive voice activity and speech-to-text end to end. Tiny Whisper models hear
it best slowly (about 120 words a minute) with some silence around it.

The output is not exactly repeatable: espeak-ng adds a pitch "flutter" whose phase is a static
that carries over from one utterance to the next, so the same text comes out slightly
differently each call (enough to flip a tiny model between "breathe" and "dream").

espeak-ng keeps one synthesizer per process (global voice, rate and callback), so every call
goes through one lock, and the library is loaded and initialised once, on first use.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import wave
from pathlib import Path

import numpy as np

from modelfarm.errors import BackendUnavailableError, ConfigError, InvalidRequestError

RATE = 16_000
"""Sample rate of what `speak` returns (Hz): the rate the audio processors expect."""

_LOCK = threading.Lock()
"""Serialises every use of the library: espeak-ng's synthesizer is one global per process."""

# espeak-ng's C constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_RATE_PARAMETER = 1  # espeakRATE, words per minute
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_MIN_WPM, _MAX_WPM = 80, 450

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """The loaded library and its native sample rate; use only while holding `_LOCK`."""

    def __init__(self) -> None:
        lib_path, data_path = _library_paths()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise ConfigError(f"cannot load espeak-ng from {lib_path}: {exc}; reinstall `espeakng-loader`") from exc
        self._declare_signatures()
        self.native_rate = int(
            self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        )
        if self.native_rate <= 0:
            raise ConfigError(f"espeak-ng failed to initialise with data at {data_path!r}; reinstall `espeakng-loader`")
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_audio)  # kept on self: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _declare_signatures(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size in bytes, with the trailing NUL
            ctypes.c_uint,  # position
            ctypes.c_int,  # position type
            ctypes.c_uint,  # end position (0: none)
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique identifier (out)
            ctypes.c_void_p,  # user data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        self._has_seed = hasattr(lib, "espeak_ng_SetRandSeed")  # espeak-ng >= 1.52
        if self._has_seed:
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = ctypes.c_int

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        """Called by espeak-ng with each block of int16 samples; returning 0 asks for more."""
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(self, text: str, *, wpm: int, voice: str) -> np.ndarray:
        """int16 samples at `native_rate` for `text`."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ConfigError(f"espeak-ng has no voice {voice!r}: use a language code such as 'en' or 'en-us'")
        self._lib.espeak_SetParameter(_RATE_PARAMETER, wpm, 0)
        if self._has_seed:  # same noise for the same text (pitch flutter still depends on earlier calls)
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(1))
        self._chunks = []
        data = text.encode() + b"\0"
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != _EE_OK:
            raise BackendUnavailableError(f"espeak-ng could not synthesize {text[:40]!r} (error {err})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _library_paths() -> tuple[str, bytes]:
    """Where `espeakng-loader` keeps the shared library and its voice data."""
    try:
        import espeakng_loader  # type: ignore[import-untyped]

        return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path()).encode()
    except (ImportError, RuntimeError) as exc:
        raise ConfigError(f"espeak-ng is not available ({exc}): `pip install espeakng-loader`") from exc


@functools.cache
def _engine() -> _Espeak:
    """The one engine of this process, created on first use (always called under `_LOCK`)."""
    return _Espeak()


def speak(text: str, *, wpm: int = 120, voice: str = "en", pad_s: float = 0.5) -> np.ndarray:
    """Synthesize `text` as float32 mono samples in [-1, 1] at 16 kHz, with `pad_s` of silence on both sides.

    Raises ConfigError if the library cannot load or the voice is unknown, InvalidRequestError
    if `wpm` is outside espeak-ng's 80-450 range or `pad_s` is negative.
    """
    if not _MIN_WPM <= wpm <= _MAX_WPM:
        raise InvalidRequestError(f"wpm={wpm} is outside espeak-ng's range {_MIN_WPM}-{_MAX_WPM}", param="wpm")
    if pad_s < 0:
        raise InvalidRequestError(f"pad_s={pad_s} must be >= 0", param="pad_s")
    with _LOCK:
        engine = _engine()
        pcm = engine.synth(text, wpm=wpm, voice=voice)
        native_rate = engine.native_rate
    speech = _to_rate(pcm.astype(np.float32) / 32768.0, native_rate, RATE)
    pad = np.zeros(round(pad_s * RATE), np.float32)
    return np.concatenate([pad, speech, pad])


def _to_rate(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample float32 audio from `rate` to `target` Hz (polyphase: 22050 -> 16000 is 320/441)."""
    if rate == target or samples.size == 0:
        return samples.astype(np.float32)
    from scipy.signal import resample_poly

    return np.asarray(resample_poly(samples, target, rate), dtype=np.float32)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file (clipped, not normalised)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
