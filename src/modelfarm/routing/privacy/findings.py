"""What the guard reports: a kind and a span, never the matched text.

A finding keeps no text field on purpose: findings are logged and stored with each routing
decision, and the matched value must not reach a log. Callers that need the text slice it from
the message they scanned (`messages[f.message].content[f.start:f.end]`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KINDS: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "API_KEY",
    "PERSON",
    "STREET_ADDRESS",
    "DATE_OF_BIRTH",
    "MEDICAL_RECORD_NUMBER",
)
"""Every kind the guard reports; anything else a recognizer finds is dropped."""

# When spans of two kinds overlap, the merged finding takes the more specific kind: checksummed
# and prefixed formats first, then context-anchored ones, then the broad NER and address guesses.
_SPECIFICITY: dict[str, int] = {
    kind: rank
    for rank, kind in enumerate(
        (
            "API_KEY",
            "CREDIT_CARD",
            "IBAN_CODE",
            "EMAIL_ADDRESS",
            "US_SSN",
            "MEDICAL_RECORD_NUMBER",
            "DATE_OF_BIRTH",
            "IP_ADDRESS",
            "PHONE_NUMBER",
            "STREET_ADDRESS",
            "PERSON",
        )
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One span of personal data or a secret in one message of a request."""

    kind: str
    """One of `KINDS`."""
    message: int
    """Index of the message in the scanned list."""
    start: int
    """First character of the span in that message's content."""
    end: int
    """One past the last character of the span."""
    score: float
    """Confidence in [0, 1]; the guard reports only findings at or above its `min_score`."""


def specificity(kind: str) -> int:
    """Lower is more specific; unknown kinds rank last."""
    return _SPECIFICITY.get(kind, len(_SPECIFICITY))


def merge_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Merge overlapping spans of one message into one finding of the most specific kind.

    The merged span is the union, so redacting it removes everything any recognizer saw;
    the score is the highest of the parts. The result is sorted by (message, start).
    """
    ordered = sorted(findings, key=lambda f: (f.message, f.start, -f.end))
    merged: list[Finding] = []
    for f in ordered:
        last = merged[-1] if merged else None
        if last is None or last.message != f.message or f.start >= last.end:
            merged.append(f)
            continue
        kind = f.kind if specificity(f.kind) < specificity(last.kind) else last.kind
        merged[-1] = Finding(kind, last.message, last.start, max(last.end, f.end), max(last.score, f.score))
    return merged
