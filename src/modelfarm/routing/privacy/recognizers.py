"""Our recognizers for what presidio lacks or finds weakly: numbers that need a cue word.

Each recognizer is a presidio `LocalRecognizer` for one kind that yields (start, end, score)
spans. Context (a cue such as "DOB" or "date of birth" near the match) is checked here, on the
raw text, rather than by presidio's context enhancer (which the detector turns off): our cues
are phrases, and the scores below are final.

Scores: 0.9 when a format is unambiguous next to its cue, 0.7 for a strong shape alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

Span = tuple[int, int, float]
"""(start, end, score) of one match in the analyzed text."""


class SpanRecognizer(LocalRecognizer):
    """One kind, found by `spans()`; the adapter to presidio's `analyze()` lives here once."""

    KIND = ""

    def __init__(self) -> None:
        super().__init__(supported_entities=[self.KIND], name=type(self).__name__, supported_language="en")

    def load(self) -> None:
        """Nothing to load: the patterns compile at import of this module."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if self.KIND not in entities:
            return []
        return [RecognizerResult(self.KIND, s, e, score) for s, e, score in self.spans(text, nlp_artifacts)]

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        raise NotImplementedError


def near(text: str, start: int, end: int, cue: re.Pattern[str], before: int = 48, after: int = 24) -> bool:
    """Whether `cue` occurs within `before` characters ahead of the span or `after` behind it."""
    return bool(cue.search(text, max(0, start - before), start) or cue.search(text, end, end + after))


# --- US social security numbers without dashes, or in any separator, when the text says SSN ---

_SSN_CUE = re.compile(
    r"(?<![A-Za-z])(?:ssn|ss\s*\#|ss\s+no\.?|social\s+security(?:\s+(?:number|no\.?|\#))?"
    r"|social\s+sec\.?|taxpayer\s+id|itin)(?![A-Za-z])",
    re.I,
)
_SSN = re.compile(r"(?<![\w-])(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\w-])")


class ContextSsnRecognizer(SpanRecognizer):
    """Nine digits, with or without separators, next to an SSN cue (presidio needs the dashes)."""

    KIND = "US_SSN"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        for m in _SSN.finditer(text):
            area, group, serial = m.group(1), m.group(3), m.group(4)
            # Never issued: area 000, 666 or 900-999, group 00, serial 0000.
            if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
                continue
            if near(text, m.start(), m.end(), _SSN_CUE, before=48, after=48):
                yield m.start(), m.end(), 0.9


# --- medical record numbers: the cue is required, the value is any id with digits ---

_MRN = re.compile(
    r"(?<![A-Za-z])(?:MRN|MR\s*\#|MR\s+(?:number|no\.?)"
    r"|medical[\s-]+records?(?:[\s-]+(?:number|no\.?|num|\#|id))?"
    r"|patient[\s-]+(?:id|identifier|number|no\.?|num|\#|record)"
    r"|chart[\s-]+(?:number|no\.?|\#)|health[\s-]+record[\s-]+(?:number|no\.?|\#)"
    r"|hospital[\s-]+(?:number|no\.?|id))"
    r"(?:\s*(?:\#|:|=|-|is|was|of|number|no\.?)\s*|\s+){0,3}"
    r"(?P<value>(?=[A-Z0-9-]*\d{3})[A-Z0-9][A-Z0-9-]{3,20}[A-Z0-9])(?![\w-])",
    re.I,
)


class MedicalRecordRecognizer(SpanRecognizer):
    KIND = "MEDICAL_RECORD_NUMBER"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        for m in _MRN.finditer(text):
            yield m.start("value"), m.end("value"), 0.9


# --- dates of birth: a date in one of many formats next to a birth cue ---

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
_YEAR_OR_SHORT = rf"(?:{_YEAR}|'\d\d)"
_DATE = re.compile(
    r"(?<![\w/.-])(?:"
    r"\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})"  # 03/12/1985, 12.03.85
    rf"|{_YEAR}[/.\-]\d{{1,2}}[/.\-]\d{{1,2}}"  # 1985-03-12
    rf"|(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR_OR_SHORT}"  # 12 March 1985, 12th of March, 1985
    rf"|{_MONTH}\s+{_DAY},?\s+{_YEAR_OR_SHORT}"  # March 12, 1985
    rf"|\d{{1,2}}[\-\s]{_MONTH}[\-\s]{_YEAR}"  # 12-Mar-1985
    rf"|{_MONTH},?\s+{_YEAR}"  # March 1985
    rf"|{_YEAR}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # 19850312
    r")(?![\w/-]|\.\d)",
    re.I,
)
_BIRTH_CUE = re.compile(
    r"(?<![A-Za-z])(?:born|birth\s*date|birthdate|birthday|date\s+of\s+birth|day\s+of\s+birth"
    r"|year\s+of\s+birth|b-?day|d\.?o\.?b\.?|n[ée]e?\s+le|geb(?:oren|\.)|fecha\s+de\s+nacimiento)(?![A-Za-z])",
    re.I,
)
_MONTH_WORD = re.compile(_MONTH, re.I)


class DateOfBirthRecognizer(SpanRecognizer):
    """A date near "born", "DOB", "date of birth" or "birthday".

    Regex dates cover the common written forms; spaCy's DATE entities (presidio's DATE_TIME)
    add the free-form ones, but only when they name a month or carry two numbers, so that
    "born in 1985" (a year, not a date of birth) stays unflagged.
    """

    KIND = "DATE_OF_BIRTH"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        if not _BIRTH_CUE.search(text):
            return
        for m in _DATE.finditer(text):
            if near(text, m.start(), m.end(), _BIRTH_CUE, before=56, after=32):
                yield m.start(), m.end(), 0.9
        for ent in nlp_artifacts.entities if nlp_artifacts is not None else ():
            if ent.label_ != "DATE_TIME":
                continue
            value = ent.text
            if not (_MONTH_WORD.search(value) or len(re.findall(r"\d+", value)) >= 2):
                continue
            if near(text, ent.start_char, ent.end_char, _BIRTH_CUE, before=56, after=32):
                yield ent.start_char, ent.end_char, 0.8
