"""Generate the street demo's media from scenario.py: a dashboard camera's video and the cabin's audio.

    python examples/street/make_media.py [--out examples/street/media] [--fps 5]

Writes `street.avi` (640x480, MJPG, 5 fps: a road drawn with OpenCV, pedestrians as upright
silhouettes that OpenCV's HOG people detector finds, a STOP sign and a speed-limit sign at
the scripted times) and `street.wav` (16 kHz mono: low-passed road noise with a wailing
siren). Deterministic; a few seconds on 2 cores. The media are not committed: regenerate them.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16_000
HORIZON = 190  # y of the vanishing point (px)
CROSSING_Y = 445  # where pedestrians' feet are (px): on the zebra crossing
POLE_X = 580  # the signpost's x (px), right of the road, clear of the pedestrians


def scenario() -> ModuleType:
    """scenario.py loaded by its path (a plain `import scenario` could find another demo's)."""
    name = "street_scenario"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "scenario.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- video --------------------------------------------------------------------------------------


def background(width: int = 640, height: int = 480) -> np.ndarray:
    """The empty street, BGR (H, W, 3): sky, pavements, kerbs, a road to the horizon, a zebra crossing."""
    image = np.zeros((height, width, 3), np.uint8)
    sky_top, sky_low = np.array([225, 190, 150]), np.array([240, 228, 210])  # BGR: blue to pale
    for y in range(HORIZON):
        image[y] = sky_top + (sky_low - sky_top) * y / HORIZON
    image[HORIZON:] = (165, 168, 172)  # pavement
    vx = width // 2

    def edge(x_bottom: float) -> np.ndarray:  # a line from the bottom of the frame to the vanishing point
        return np.array([[vx + (x_bottom - vx) * 0.04, HORIZON], [x_bottom, height]], np.float64)

    left, right = edge(-160), edge(width + 160)
    for side, sign in ((left, -1), (right, 1)):  # kerbs: a light band just outside each road edge
        kerb = side.copy()
        kerb[:, 0] += sign * np.array([1.5, 22.0])
        cv2.fillPoly(image, [np.vstack([side, kerb[::-1]]).round().astype(np.int32)], (205, 205, 210))
    road = np.vstack([left, right[::-1]]).round().astype(np.int32)
    cv2.fillPoly(image, [road], (112, 110, 108))  # asphalt
    for i in range(8):  # dashed centre line, dashes shorter towards the horizon
        y0 = HORIZON + (height - HORIZON) * (i / 8) ** 1.6
        y1 = HORIZON + (height - HORIZON) * ((i + 0.5) / 8) ** 1.6
        cv2.line(image, (vx, round(y0)), (vx, round(y1)), (230, 230, 230), max(1, round(6 * (y1 - HORIZON) / 290)))
    for x in range(-140, width + 140, 70):  # zebra crossing under the pedestrians' feet
        cv2.rectangle(image, (x, CROSSING_Y - 25), (x + 35, CROSSING_Y + 25), (215, 215, 215), -1)
    image[HORIZON - 1 : HORIZON + 1] = (150, 150, 150)  # the horizon line
    return image


def draw_person(image: np.ndarray, x: int, y: int, height: int, color: tuple[int, int, int]) -> None:
    """A standing silhouette (head, torso, arms, legs) with its head's top at (x, y): the shape
    tests/test_senses_vision.py checks HOG on."""
    u = height / 8.0

    def pt(dx: float, dy: float) -> list[int]:
        return [round(x + dx * u), round(y + dy * u)]

    cv2.ellipse(image, pt(0, 0.55), (round(0.42 * u), round(0.55 * u)), 0, 0, 360, color, -1)
    parts = [
        [pt(-0.25, 1.0), pt(0.25, 1.0), pt(0.25, 1.3), pt(-0.25, 1.3)],
        [pt(-1, 1.3), pt(1, 1.3), pt(0.8, 4.3), pt(-0.8, 4.3)],
    ]
    for s in (-1, 1):
        parts.append([pt(s * 0.8, 1.4), pt(s * 1.15, 1.5), pt(s * 1.35, 4.3), pt(s * 1.0, 4.3)])  # arm
        parts.append([pt(s * 0.05, 4.2), pt(s * 0.8, 4.2), pt(s * 0.75, 8), pt(s * 0.2, 8)])  # leg
    cv2.fillPoly(image, [np.array(p, np.int32) for p in parts], color)


def _centred_text(image: np.ndarray, text: str, cx: int, cy: int, scale: float, color: tuple[int, int, int]) -> None:
    """`text` in bold Hershey Duplex, centred on (cx, cy)."""
    font, thickness = cv2.FONT_HERSHEY_DUPLEX, max(1, round(2.2 * scale))
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    cv2.putText(image, text, (cx - w // 2, cy + h // 2), font, scale, color, thickness, cv2.LINE_AA)


def draw_stop_sign(image: np.ndarray, cx: int, cy: int, radius: int) -> None:
    """A red octagon with a white rim and white STOP, on a post."""
    cv2.rectangle(image, (cx - 3, cy), (cx + 3, CROSSING_Y - 100), (70, 70, 70), -1)
    angles = np.pi / 8 + np.arange(8) * np.pi / 4  # flat top and bottom
    for r, color in ((radius, (245, 245, 245)), (radius - 5, (35, 30, 200))):
        points = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).round().astype(np.int32)
        cv2.fillPoly(image, [points], color, cv2.LINE_AA)
    _centred_text(image, "STOP", cx, cy, radius / 64, (245, 245, 245))


def draw_speed_sign(image: np.ndarray, cx: int, cy: int, limit: int) -> None:
    """A white rectangle with a black rim: SPEED / LIMIT / the number, stacked (the US R2-1 layout)."""
    w, h = 96, 130
    cv2.rectangle(image, (cx - 3, cy), (cx + 3, CROSSING_Y - 100), (70, 70, 70), -1)
    cv2.rectangle(image, (cx - w // 2, cy - h // 2), (cx + w // 2, cy + h // 2), (20, 20, 20), -1)
    cv2.rectangle(image, (cx - w // 2 + 4, cy - h // 2 + 4), (cx + w // 2 - 4, cy + h // 2 - 4), (245, 245, 245), -1)
    _centred_text(image, "SPEED", cx, cy - 42, 0.62, (20, 20, 20))
    _centred_text(image, "LIMIT", cx, cy - 18, 0.62, (20, 20, 20))
    _centred_text(image, str(limit), cx, cy + 28, 1.5, (20, 20, 20))


PERSON_COLORS = [(70, 45, 30), (40, 40, 95)]  # BGR: a navy coat, a maroon one


def people_at(t: float) -> list[tuple[int, int]]:
    """(x, head top y) of every pedestrian visible at `t`."""
    sc = scenario()
    out = []
    for start, end, x0, x1 in sc.PEOPLE:
        if start <= t < end:
            x = x0 + (x1 - x0) * (t - start) / (end - start)
            out.append((round(x), CROSSING_Y - sc.PERSON_HEIGHT))
    return out


def render_street(t: float) -> np.ndarray:
    """The frame at stream time `t`: BGR uint8 (480, 640, 3)."""
    sc = scenario()
    image = background(*sc.SIZE)
    for start, end, text in sc.SIGNS:
        if start <= t < end:
            if text == "STOP":
                draw_stop_sign(image, POLE_X, 120, 52)
            else:
                draw_speed_sign(image, POLE_X, 120, int(text.split()[-1]))
    for (x, y), color in zip(people_at(t), PERSON_COLORS, strict=False):
        draw_person(image, x, y, sc.PERSON_HEIGHT, color)
    return cv2.GaussianBlur(image, (5, 5), 0)


def write_street_video(path: Path, fps: float) -> int:
    """The scenario as an MJPG .avi at `fps`; returns the number of frames."""
    sc = scenario()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, sc.SIZE)
    if not writer.isOpened():
        raise OSError(f"OpenCV could not open an MJPG writer for {path}")
    count = round(float(sc.DURATION) * fps)
    try:
        for index in range(count):
            writer.write(render_street(index / fps))
    finally:
        writer.release()
    return count


# --- audio --------------------------------------------------------------------------------------


def road_noise(seconds: float, seed: int = 11) -> np.ndarray:
    """Tyre and engine rumble: white noise low-passed at 300 Hz, RMS 0.05, rising and falling slowly."""
    from scipy.signal import butter, sosfilt

    n = round(seconds * RATE)
    noise = np.random.default_rng(seed).standard_normal(n)
    rumble = np.asarray(sosfilt(butter(4, 300.0, btype="low", fs=RATE, output="sos"), noise))
    t = np.arange(n) / RATE
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * 0.07 * t)  # the engine note drifts over ~15 s
    return np.asarray(0.05 * swell * rumble / rumble.std(), dtype=np.float32)


def wail(seconds: float, low_hz: float, high_hz: float, sweeps_per_s: float) -> np.ndarray:
    """A siren's wail: a tone whose pitch swings sinusoidally between `low_hz` and `high_hz`,
    fading in and out over a second (the vehicle approaches, then passes)."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    hz = (low_hz + high_hz) / 2 + (high_hz - low_hz) / 2 * np.sin(2 * np.pi * sweeps_per_s * t)
    fade = np.clip(np.minimum(t, seconds - t), 0.0, 1.0)
    return (0.3 * fade * np.sin(2 * np.pi * np.cumsum(hz) / RATE)).astype(np.float32)


def street_audio() -> np.ndarray:
    """The whole soundtrack: 16 kHz mono float32 in [-1, 1]."""
    sc = scenario()
    audio = road_noise(sc.DURATION)
    start, end = sc.SIREN
    low_hz, high_hz = sc.SIREN_HZ
    siren = wail(end - start, low_hz, high_hz, sc.SIREN_SWEEPS_PER_S)
    at = round(start * RATE)
    audio[at : at + len(siren)] += siren[: len(audio) - at]
    return np.asarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)


def make(out: Path, fps: float | None = None) -> list[Path]:
    """Write street.avi and street.wav into `out`; returns their paths."""
    from modelfarm.senses.tts import write_wav

    out.mkdir(parents=True, exist_ok=True)
    video, wav = out / "street.avi", out / "street.wav"
    write_street_video(video, fps or scenario().FPS)
    write_wav(wav, street_audio())
    return [video, wav]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "media", help="folder for the media")
    ap.add_argument("--fps", type=float, default=None, help="video frame rate (default: the scenario's, 5)")
    args = ap.parse_args()
    for path in make(args.out, args.fps):
        print(path)


if __name__ == "__main__":
    main()
