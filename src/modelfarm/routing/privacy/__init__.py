"""The privacy guard: personal data and secrets in a request, found and reversibly redacted.

    guard = PrivacyGuard()                      # loads spaCy + presidio on first scan
    findings = guard.scan(messages)             # [Finding(kind, message, start, end, score)]
    redacted, redaction = guard.redact(messages, findings)
    answer = redaction.restore(model_answer)    # placeholders back to the originals

Importing this package loads nothing heavy; presidio and spaCy are imported by `load()`.
"""

from modelfarm.routing.privacy.findings import KINDS, Finding
from modelfarm.routing.privacy.guard import PrivacyGuard, PrivacyModelError
from modelfarm.routing.privacy.redact import Redaction, StreamRestorer

__all__ = ["KINDS", "Finding", "PrivacyGuard", "PrivacyModelError", "Redaction", "StreamRestorer"]
