"""The ward scenario: what the monitor shows, what is said and what the nurse writes, over time.

One source of truth for the media generator (make_media.py), the demo's README and the test
that checks the alerts: times are seconds from the start of the stream.
"""

from __future__ import annotations

DURATION = 180.0

# (from time, values shown from then on); a (start, end) pair ramps linearly to the next entry.
MONITOR = [
    (0.0, {"hr": 78, "spo2": 97, "bp": "122/78", "rr": 16, "temp": 36.8}),
    (55.0, {"hr": (78, 128)}),  # heart rate climbs for 10 s ...
    (65.0, {"hr": 128}),  # ... and stays above 120: tachycardia from 65 s
    (88.0, {"spo2": (97, 86)}),
    (92.0, {"spo2": 86, "rr": 24}),  # desaturation from ~90 s
    (140.0, {"spo2": (86, 95), "hr": (128, 96)}),
    (150.0, {"spo2": 95, "hr": 96, "rr": 18}),
]

# (time, words): spoken by the patient; the rest of the audio is quiet breathing.
SPEECH = [
    (101.0, "I can't breathe."),
    (118.0, "Please help me, call the nurse."),
]
BREATHS_PER_MIN = 16.0

# (time, note) typed by staff.
NOTES = [
    (20.0, "Obs stable, patient resting comfortably."),
    (96.0, "Pt complaining of shortness of breath, sats 86% on room air."),
    (145.0, "O2 2 L via nasal cannula started, sats improving."),
]

# The alerts the demo's rules must raise: (rule, earliest, latest) stream time in seconds.
EXPECTED = [
    ("tachycardia", 70.0, 80.0),  # HR > 120 for 10 s: true from ~75 s (read once a second)
    ("desaturation", 101.0, 106.0),  # SpO2 < 90 for 10 s and "can't breathe" (said at 101-102 s)
    ("distress_speech", 101.0, 106.0),
    ("note_breathless", 96.0, 100.0),
]
