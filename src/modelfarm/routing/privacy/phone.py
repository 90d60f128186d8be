"""Phone numbers in national and international formats, validated by `phonenumbers`.

presidio's PhoneRecognizer runs `phonenumbers.PhoneNumberMatcher` over the whole text once per
region, which costs ~70 ms per region on a 400-word prompt here. We find digit runs with one
cheap regex, keep those valid as a number in some region, and run the matcher only on those
few windows, in that region.

Scores: an international number (`+44 ...`, `0044 ...`) or a formatted national one
(`(212) 555-0143`, `020 7946 0958`) is a phone number by its shape; bare digits
(`2125550143`) could be an order or account number, so they count only next to a phone cue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
from presidio_analyzer.nlp_engine import NlpArtifacts

from modelfarm.routing.privacy.recognizers import Span, SpanRecognizer, near

# National formats are read as these regions; international ones parse under any region.
REGIONS: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "IN", "AU", "BR", "JP", "ES", "IT", "NL", "MX", "CN", "ZA", "NG", "IE",
)  # fmt: skip
_CANDIDATE = re.compile(r"(?:\+|\b00|\()?\d[\d \t().\-/]{5,}\d")
_DATE_SHAPED = re.compile(r"^\(?\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}\)?$")
_PHONE_CUE = re.compile(
    r"(?<![A-Za-z])(?:phone|tel|telephone|mobile|cell|cellphone|call|ring|text|sms|whatsapp|signal|fax"
    r"|landline|dial|reach|contact|hotline|ph|mob)(?![A-Za-z])",
    re.I,
)


def _regions(raw: str) -> list[tuple[str, int]]:
    """(region, leniency) pairs under which `raw` reads as a phone number (~0.1 ms a region).

    A cheap screen before the matcher (~0.4 ms a region), which most digit runs in a prompt
    (amounts, ids, dates) fail in every region. A national number must be valid in the region.
    An international one (`+44 ...`) need only be possible (a plausible length for its country
    code): the "+" says phone, and a number from a range `phonenumbers` does not know yet
    (or a fictional one, such as +44 7700 900xxx) is still one to keep private.
    """
    try:
        if raw.startswith(("+", "00")):
            number = phonenumbers.parse("+" + raw[2:] if raw.startswith("00") else raw, None)
            return [(REGIONS[0], phonenumbers.Leniency.POSSIBLE)] if phonenumbers.is_possible_number(number) else []
    except phonenumbers.NumberParseException:
        return []
    regions = []
    for region in REGIONS:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            regions.append((region, phonenumbers.Leniency.VALID))
    return regions


class PhoneNumberRecognizer(SpanRecognizer):
    KIND = "PHONE_NUMBER"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        seen: set[tuple[int, int]] = set()
        for cand in _CANDIDATE.finditer(text):
            raw = cand.group()
            digits = sum(c.isdigit() for c in raw)
            # E.164 numbers have at most 15 digits (16 with a "(0)"); a longer run is a card,
            # an IBAN or a count.
            if digits < 7 or digits > 16 or _DATE_SHAPED.match(raw.strip()):
                continue
            # The matcher, run in the regions where the digits are valid, decides the exact span
            # and rejects what only parses by accident (IPs, dates, SSN-shaped groups).
            # One character of margin each side lets it see a "+" or a word boundary.
            lo, hi = max(0, cand.start() - 1), min(len(text), cand.end() + 1)
            for region, leniency in _regions(raw):
                matches = list(phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=leniency))
                for m in matches:
                    span = (lo + m.start, lo + m.end)
                    if span not in seen:
                        seen.add(span)
                        yield span[0], span[1], self._score(text, span[0], span[1], m.raw_string)
                if matches:
                    break

    @staticmethod
    def _score(text: str, start: int, end: int, raw: str) -> float:
        if raw.startswith(("+", "00")):
            return 0.85
        formatted = any(c in raw for c in " -.()")
        cue = near(text, start, end, _PHONE_CUE, before=40, after=16)
        if formatted:
            return 0.85 if cue else 0.7
        return 0.75 if cue else 0.4
