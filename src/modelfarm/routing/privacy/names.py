"""Names the small NER model misses, found by the words around them.

spaCy's small English model tags "Arjun Iyer" in "a note from Arjun Iyer" as an organisation
and misses many names from outside its (mostly American news) training data. People are
talked about in recognisable ways, though: with an honorific ("Dr. Okafor"), a greeting
("Dear Hugo Girard,"), a relation ("my colleague Wanjiru Mwangi"), or a verb of
communication ("Emeka Balogun called", "remind Tunde Adeyemi"). A name here is one to three
capitalised words, cut at the first word that is capitalised for another reason ("Monday").
Cues that also precede products and places ("ask", "from") need two name words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from presidio_analyzer.nlp_engine import NlpArtifacts

from modelfarm.routing.privacy.recognizers import Span, SpanRecognizer
from modelfarm.routing.privacy.vocab import NOT_NAME_WORDS, is_sentence_opener

_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĖĘĚĞĠĢĤĦĪĮİĶĹĻĽŁŃŅŇŌŐŒŔŖŘŚŜŞŠŢŤŪŮŰŲŴŶŸŹŻŽ"
_APOSTROPHES = "'\u2019"
_NAME_WORD = rf"(?:[{_UPPER}][^\W\d_]+(?:[-{_APOSTROPHES}][{_UPPER}]?[^\W\d_]+)*)"
_PARTICLE = r"(?:van|von|der|den|de|da|di|del|della|dos|du|la|le|al|el|bin|ibn|ben|ter|ten)"
_INITIAL = rf"[{_UPPER}]\."
_NAME_AT = re.compile(rf"{_NAME_WORD}(?:[ \t]+(?:(?:{_PARTICLE}|{_INITIAL})[ \t]+)?{_NAME_WORD}){{0,2}}")


_RELATIONS = (
    "friend|colleague|co-?worker|boss|manager|supervisor|wife|husband|partner|spouse|son|daughter|"
    "child|kid|mother|mom|mum|father|dad|brother|sister|uncle|aunt|cousin|nephew|niece|grand(?:mother|"
    "father|son|daughter|ma|pa)|neighbou?r|doctor|dentist|nurse|therapist|lawyer|accountant|client|"
    "customer|patient|teacher|tutor|student|tenant|landlord|landlady|employee|employer|intern|"
    "roommate|flatmate|fianc[ée]e?|girlfriend|boyfriend|classmate|mentor|assistant|caregiver|"
    "guest|contact|recipient|applicant|candidate|author|sender|owner|buyer|seller|agent"
)
_COMM_NOUNS = (
    r"e-?mail|message|note|letter|call|meeting|reply|invitation|invite|text|reminder|card|gift|"
    r"reference|recommendation|toast|speech|eulogy|apology|offer|contract|invoice|quote|payment"
)
_COMM_VERBS_BEFORE = (
    r"e-?mail|call|phone|text|ask|tell|remind|thank|meet|met|invite|congratulate|introduce|hire|pay|"
    r"contact|notify|cc|forward\s+(?:it|this)\s+to|write\s+to|reply\s+to|talk\s+to|speak\s+(?:to|with)"
)
_COMM_VERBS_AFTER = (
    r"called|phoned|said|says|wrote|writes|asked|asks|told|emailed|e-mailed|texted|messaged|replied|"
    r"mentioned|complained|signed|approved|confirmed|visited|agreed|resigned|retired|and\s+I|is\s+my|"
    r"was\s+my"
)

# (cue before the name, fewest name words, score). Cues are case-insensitive, names are not.
_CUES_BEFORE: tuple[tuple[re.Pattern[str], int, float], ...] = tuple(
    (re.compile(cue), words, score)
    for cue, words, score in (
        (
            r"(?<![A-Za-z])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Mme|Mlle|Herr|Frau|Sr|Sra|Srta)"
            r"\.?[ \t]+",
            1,
            0.75,
        ),
        (
            r"(?i:(?<![a-z])(?:my\s+name\s+is|my\s+name's|i\s+am\s+called|call\s+me|(?:full\s+)?name\s*:"
            r"|patient\s*:|signed\s*,?|under\s+the\s+name)\s*)",
            1,
            0.75,
        ),
        # "a cat named Whiskers": one word after "named" is as often a pet or a product.
        (
            r"(?i:(?<![a-z])(?:named|called|booked\s+(?:for|under)|reserv(?:ed|ation)\s+(?:for|under)"
            r"|(?:table|room|booking)\s+for\s+\w+\s+under|under\s+the\s+name\s+of)\s+)",
            2,
            0.65,
        ),
        (r"(?i:(?<![a-z])(?:i'm|i\s+am)\s+)", 2, 0.65),
        (r"(?i:(?<![a-z])(?:dear|hi|hello|hey|attn\.?:?|attention:|cc:)[ \t]+)", 1, 0.7),
        (
            r"(?i:(?<![a-z])(?:regards|sincerely|cheers|thanks|best|yours|love|warmly|respectfully)"
            r"\s*,?[ \t]*\n\s*)",
            1,
            0.7,
        ),
        (rf"(?i:(?<![a-z])(?:my|our|his|her|their|your|the)\s+(?:{_RELATIONS})s?,?[ \t]+)", 1, 0.7),
        (
            r"(?i:(?<![a-z])(?:patient|client|customer|employee|tenant|applicant|candidate|resident|member)"
            r",?[ \t]+)",
            2,
            0.65,
        ),
        (rf"(?i:(?<![a-z])(?:{_COMM_NOUNS})(?:\s+[a-z]+)?\s+(?:to|from|with|for)[ \t]+)", 2, 0.65),
        (rf"(?i:(?<![a-z])(?:{_COMM_VERBS_BEFORE})[ \t]+)", 2, 0.65),
    )
)
_NAME_THEN_VERB = re.compile(
    rf"(?<![\w{_APOSTROPHES}])(?P<name>{_NAME_WORD}(?:[ \t]+(?:(?:{_PARTICLE}|{_INITIAL})[ \t]+)?{_NAME_WORD}){{1,2}})"
    rf"(?:[ \t]+(?i:{_COMM_VERBS_AFTER}))(?![A-Za-z])"
)


def _name_at(text: str, pos: int, min_words: int) -> tuple[int, int] | None:
    """The name starting at `pos`, cut at the first non-name word, if it has `min_words` words."""
    m = _NAME_AT.match(text, pos)
    if m is None:
        return None
    end = pos
    words = 0
    for word in re.finditer(r"\S+", m.group()):
        if word.group() in NOT_NAME_WORDS:
            break
        end = pos + word.end()
        words += not re.fullmatch(rf"{_PARTICLE}|{_INITIAL}", word.group())
    return (pos, end) if words >= min_words else None


class NameCueRecognizer(SpanRecognizer):
    KIND = "PERSON"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        for cue, min_words, score in _CUES_BEFORE:
            for m in cue.finditer(text):
                found = _name_at(text, m.end(), min_words)
                if found is not None:
                    yield found[0], found[1], score
        for m in _NAME_THEN_VERB.finditer(text):
            start = m.start("name")
            first = re.match(r"\S+\s+", m.group("name"))
            if first is not None and is_sentence_opener(first.group().strip()):
                start += first.end()  # "However Ana Lima said": the name starts after "However"
            found = _name_at(text, start, 2)
            # The whole name must survive the cut: "Monday Maria called" is not a two-word name.
            if found is not None and found[1] == m.end("name"):
                yield found[0], found[1], 0.65


def extend_name(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow a name span over capitalised name words right next to it.

    NER often tags one word of a name it does not know ("Beatriz Souza's" -> "Souza"); names
    are runs of capitalised words, so the neighbours belong to it. A word that opens a sentence
    is capitalised for that reason and is not taken.
    """
    before = re.search(rf"(?:^|(?<=[\s(]))({_NAME_WORD})[ \t]+$", text[max(0, start - 40) : start])
    if before is not None and before.group(1) not in NOT_NAME_WORDS:
        word_start = start - len(before.group(0))
        opens_sentence = re.search(r"(?:^|[.!?:]\s+|\n\s*)$", text[:word_start]) is not None
        mid_word = word_start > 0 and text[word_start - 1].isalnum()  # the 40-character window cut a word
        if not (opens_sentence or mid_word):
            start = word_start
    after = re.match(rf"[ \t]+({_NAME_WORD})(?![\w])", text[end:])
    if after is not None and after.group(1) not in NOT_NAME_WORDS:
        end += after.end()
    return start, end
