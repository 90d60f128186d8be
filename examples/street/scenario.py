"""The street scenario: who crosses in front of the vehicle, which signs it passes, when a siren sounds.

One source of truth for the media generator (make_media.py), the demo's README and the test
that checks the alerts: times are seconds from the start of the stream, positions are pixels
of the 640x480 frame.
"""

from __future__ import annotations

DURATION = 60.0
FPS = 5.0
SIZE = (640, 480)  # (width, height)

# (from, to, x at `from`, x at `to`): a pedestrian on the crossing, visible from `from` to `to`
# while walking (the x of their centre line, linearly) across the road. Nobody 0-15 s, one
# person 15-30 s, two 30-40 s, nobody after.
PEOPLE = [
    (15.0, 40.0, 90, 500),
    (30.0, 40.0, 80, 230),
]
PERSON_HEIGHT = 320  # px, head to feet (a pedestrian close ahead): HOG on a 320 px copy finds it in every frame

# (from, to, text on the sign): a red octagon reading STOP, then a white speed-limit sign.
SIGNS = [
    (20.0, 35.0, "STOP"),
    (40.0, 55.0, "SPEED LIMIT 30"),
]

# (from, to): a wailing siren (sweeping 650-1500 Hz, 0.3 sweeps a second) over road noise.
SIREN = (25.0, 40.0)
SIREN_HZ = (650.0, 1500.0)
SIREN_SWEEPS_PER_S = 0.3

# The alerts the demo's rules must raise: (rule, earliest, latest) stream time in seconds.
EXPECTED = [
    ("stop_sign", 20.0, 22.0),  # the STOP sign is read on the first frame it shows (once a second)
    ("emergency_vehicle", 25.0, 29.0),  # the siren qualifies ~1.5 s in; one person is on the crossing
    ("crowd", 32.5, 35.0),  # two people from 30 s, for 3 s: the alert carries the last reading's time
    ("speed_limit", 40.0, 42.0),
]
