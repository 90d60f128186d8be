"""Street addresses: house number + capitalised street name + street suffix, PO boxes, ZIP lines.

The small spaCy model tags "Baker Street" as a facility at best and never the house number,
so addresses are found by shape. A street name must be capitalised ("5 Main Street", not
"5 miles down the road"), and a match runs on over a unit ("Apt 4B"), a city, a US state and
a ZIP or UK postcode when they follow, so the whole line is redacted rather than its head.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from presidio_analyzer.nlp_engine import NlpArtifacts

from modelfarm.routing.privacy.recognizers import Span, SpanRecognizer

# fmt: off
_SUFFIXES = sorted(
    [
        "Street", "St", "Avenue", "Ave", "Av", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
        "Dr", "Court", "Ct", "Place", "Pl", "Terrace", "Ter", "Way", "Parkway", "Pkwy", "Circle", "Cir",
        "Highway", "Hwy", "Square", "Sq", "Crescent", "Cres", "Close", "Trail", "Trl", "Alley", "Row",
        "Grove", "Gardens", "Gdns", "Mews", "Walk", "Loop", "Pike", "Plaza", "Ridge", "Heights", "Hts",
        "Expressway", "Expy", "Freeway", "Fwy", "Turnpike", "Crossing", "Xing", "Commons", "Green",
        "Esplanade", "Embankment", "Quay", "Wharf", "Broadway",
    ],
    key=len,
    reverse=True,
)
# fmt: on
_SUFFIX = "(?:" + "|".join(_SUFFIXES) + r")\.?"
_UPPER = "A-ZÀ-ÖØ-Þ"
_WORD = rf"[{_UPPER}][\w'\u2019.-]*"
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ"
    "|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_UNIT = (
    r"(?:,?[ \t]*(?:(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|bldg|building)\.?[ \t]*\#?|\#)"
    r"[ \t]*[A-Za-z0-9-]+)"
)
# City words are capitalised lower-case words, so a postcode ("NW1 6XE") is not read as a city.
_CITY_WORD = rf"(?:St\.|[{_UPPER}][a-zß-ÿ'\u2019-]+)"
_CITY = rf"(?:,[ \t]*{_CITY_WORD}(?:[ \t]+{_CITY_WORD}){{0,3}})"
_ZIP = r"(?:\d{5}(?:-\d{4})?)"
_UK_POSTCODE = r"(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]*\d[A-Z]{2})"
_CA_POSTCODE = r"(?:[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)"
_TAIL = (
    rf"{_UNIT}?{_CITY}?(?:,?[ \t]+(?:{_STATES})\b)?"
    rf"(?:,?[ \t]+(?:{_ZIP}|{_UK_POSTCODE}|{_CA_POSTCODE})\b)?"
)
_DIRECTION = r"(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?[ \t]+)"
_HOUSE = r"(?<![\w.,-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?"

_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = (
    # 221B Baker Street, London NW1 6XE / 1600 Pennsylvania Avenue NW, Washington, DC 20500
    (
        re.compile(
            rf"{_HOUSE},?[ \t]+{_DIRECTION}?(?:(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))[ \t]+){{1,4}}{_SUFFIX}"
            rf"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?(?![\w'])(?:{_TAIL})"
        ),
        0.8,
    ),
    # Hauptstraße 12, 10115 Berlin / Keizersgracht 123 (street name first, house number after)
    (
        re.compile(
            rf"(?<!\w){_WORD}(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|laan|straat|gracht"
            r"|plein|vej|gade|gatan|vägen|katu)[ \t]+\d{1,4}[a-z]?(?!\w)(?:,?[ \t]*\d{4,5}[ \t]+"
            rf"{_WORD})?"
        ),
        0.8,
    ),
    # Calle Mayor 15 / Via Roma 12 / Rua das Flores 45
    (
        re.compile(
            r"(?<!\w)(?:Calle|C/|Avenida|Avda\.|Rua|Via|Viale|Piazza|Corso|Carrer|Paseo|Plaza|Praça|Largo)"
            rf"[ \t]+(?:(?:de|del|della|dei|da|do|dos|das|la|las|los)[ \t]+)*{_WORD}(?:[ \t]+{_WORD}){{0,3}}"
            r",?[ \t]+(?:n[º°o]\.?[ \t]*)?\d{1,4}[a-zA-Z]?(?!\w)(?:,?[ \t]*\d{4,5}(?:-\d{3})?[ \t]+"
            rf"{_WORD})?"
        ),
        0.8,
    ),
    # 12 rue de la Paix, 75002 Paris
    (
        re.compile(
            r"(?<![\w.,-])\d{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée"
            r"|impasse|quai|route)[ \t]+(?:(?:de|du|des|la|le|les|d'|l')[ \t]*)*"
            rf"{_WORD}(?:[ \t]+{_WORD}){{0,3}}(?:,?[ \t]*\d{{5}}[ \t]+{_WORD})?",
            re.I,
        ),
        0.8,
    ),
    # PO Box 1234, Springfield, IL 62704
    (
        re.compile(
            r"(?<!\w)(?:P\.?[ \t]?O\.?[ \t]?(?i:box)|(?i:post[ \t]+office[ \t]+box|po[ \t]+box)|Postfach|Apartado)"
            rf"[ \t]+\d{{1,6}}(?!\w)(?:{_TAIL})"
        ),
        0.8,
    ),
    # Springfield, IL 62704 (a US city/state/ZIP line on its own)
    (re.compile(rf"(?<!\w){_WORD}(?:[ \t]+{_WORD}){{0,2}},[ \t]*(?:{_STATES})[ \t]+{_ZIP}(?!\w)"), 0.7),
)


class StreetAddressRecognizer(SpanRecognizer):
    KIND = "STREET_ADDRESS"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        for pattern, score in _PATTERNS:
            for m in pattern.finditer(text):
                end = m.end()
                # A trailing "." belongs to the sentence, not to "St." at the end of the match.
                while end > m.start() and text[end - 1] in ",. \t":
                    end -= 1
                yield m.start(), end, score
