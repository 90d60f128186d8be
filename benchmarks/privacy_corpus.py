"""How well the privacy guard finds and redacts personal data, on a generated corpus.

The corpus is generated here, from a seed: prompts that carry each PII kind in varied phrasing
and formats (names from many cultures, national and international phone formats, US/UK/EU
addresses, dates of birth in several formats, vendor keys and passwords, ...), and prompts
without PII, tricky ones included (code, math with long numbers, product and order codes,
dates that are not birth dates, version numbers, prose about keys and passwords).

Judgement call, famous people: "Who was Marie Curie?" names a real person, and the guard flags
it (it cannot tell public figures from private ones, and a hard privacy rule should not guess).
Such prompts are neither PII nor clean here: they form a third group whose flag rate is reported
for information only.

Generated values are realistic where the guard validates: card numbers pass Luhn, IBANs carry
correct check digits, phone numbers are valid for their region according to `phonenumbers`
(the library the guard uses, so phone recall measures extraction from text, not validation).

Reported:
  recall[kind]  prompts carrying that kind whose span a finding of that kind overlaps
  leaks         PII prompts whose redacted text still contains an original value (for a name,
                any of its parts; for an address, its street line, PO box or postcode)  [target 0]
  fp_rate       clean prompts with any finding                                  [target <= 5%]
  scan p50/p99  wall time of one scan, for a ~20-token and a ~500-token prompt

The table goes to stdout, then one JSON line with every number.

usage: python benchmarks/privacy_corpus.py [--seed 1] [--n 330] [--no-ner] [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: str
    start: int
    end: int
    cores: tuple[str, ...]
    """Substrings that must not survive redaction (the value, or for a name each of its parts)."""


@dataclass(frozen=True, slots=True)
class CorpusPrompt:
    text: str
    group: str
    """`pii`, `clean` or `famous`."""
    pii: tuple[PiiSpan, ...] = ()


def _w(words: str) -> list[str]:
    return words.split()


Value = tuple[str, tuple[str, ...]]
"""A generated value and its cores."""

_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "english": (
        _w("James Emily Oliver Charlotte Harry Sophie Thomas Grace Daniel Hannah"),
        _w("Thompson Whitaker Harrington Fletcher Brooks Caldwell Pemberton Ashworth"),
    ),
    "hispanic": (
        _w("Alejandro Lucía Mateo Valentina Diego Camila Santiago Ximena"),
        _w("Rodríguez Fernández Morales Castillo Gutiérrez Navarro Herrera Vargas"),
    ),
    "chinese": (_w("Wei Jing Hao Xiaoling Zhiwei Meiling Jun Yan"), _w("Zhang Wang Chen Liu Huang Zhou Xu")),
    "indian": (
        _w("Priya Arjun Ananya Rohan Lakshmi Vikram Deepika Sanjay"),
        _w("Raghunathan Sharma Iyer Patel Chatterjee Reddy Krishnan Banerjee"),
    ),
    "nigerian": (
        _w("Oluwaseun Chiamaka Emeka Adaeze Tunde Ngozi Obinna Folake"),
        _w("Adeyemi Okonkwo Nwosu Balogun Eze Okafor Adebayo Onyekachi"),
    ),
    "arabic": (
        _w("Mohammed Fatima Omar Layla Yousef Noura Khalid Samira"),
        _w("Al-Rashid Haddad Khalil Mansour El-Sayed Nasser Qureshi Abdullah"),
    ),
    "japanese": (
        _w("Haruto Yui Sota Sakura Kenji Aiko Takumi Hina"),
        _w("Tanaka Suzuki Takahashi Watanabe Yamamoto Nakamura Kobayashi"),
    ),
    "korean": (_w("Minjun Seoyeon Jiho Hayoon Doyun Jiwoo"), _w("Kim Park Choi Jung Kang Yoon")),
    "vietnamese": (_w("Linh Minh Thao Quang Huong Tuan"), _w("Nguyen Tran Pham Hoang Vu Dang")),
    "german": (_w("Lukas Anna Jonas Leonie Felix Johanna"), _w("Müller Schneider Becker Hoffmann Wagner")),
    "french": (_w("Camille Louis Chloé Théo Manon Hugo"), _w("Dubois Lefèvre Moreau Laurent Girard")),
    "slavic": (
        _w("Dmitri Anastasia Sergei Katarzyna Piotr Olga"),
        _w("Ivanov Petrova Kowalski Nowak Volkov Sokolova"),
    ),
    "turkish": (_w("Emre Elif Mehmet Zeynep Burak Ayşe"), _w("Y\u0131lmaz Demir Şahin Kaya Çelik Öztürk")),
    "east_african": (_w("Wanjiru Baraka Amani Njeri Juma Akinyi"), _w("Mwangi Otieno Kamau Wanjiku Odhiambo")),
    "brazilian": (
        _w("João Beatriz Gabriel Larissa Rafael Juliana"),
        _w("Silva Oliveira Souza Pereira Carvalho"),
    ),
    "nordic": (_w("Astrid Magnus Freya Henrik Ingrid Lars"), _w("Lindqvist Johansson Halvorsen Nieminen")),
}


def make_person(rng: random.Random) -> Value:
    first_names, last_names = _NAMES[rng.choice(sorted(_NAMES))]
    first, last = rng.choice(first_names), rng.choice(last_names)
    roll = rng.random()
    if roll < 0.12:
        middle = rng.choice("ABCDEFGHJKLMRST")
        return f"{first} {middle}. {last}", (first, last)
    if roll < 0.2:
        return f"{rng.choice(['Dr.', 'Mr.', 'Ms.', 'Mrs.', 'Prof.'])} {first} {last}", (first, last)
    return f"{first} {last}", (first, last)


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def make_card(rng: random.Random) -> Value:
    prefix, length = rng.choice(
        [("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15), ("37", 15), ("6011", 16)]
    )
    digits = _luhn_complete(prefix, length, rng)
    sep = rng.choice([" ", "-", ""])
    groups = [digits[:4], digits[4:10], digits[10:]] if length == 15 else [digits[i : i + 4] for i in range(0, 16, 4)]
    value = sep.join(groups)
    return value, (value,)


_IBAN_FORMATS = {
    "DE": "8n10n",
    "GB": "4a14n",
    "FR": "10n11c2n",
    "ES": "20n",
    "IT": "1a10n12c",
    "NL": "4a10n",
    "CH": "5n12c",
}


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


def make_iban(rng: random.Random) -> Value:
    country = rng.choice(sorted(_IBAN_FORMATS))
    bban = ""
    for count, cls in re.findall(r"(\d+)([anc])", _IBAN_FORMATS[country]):
        alphabet = {"a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "n": "0123456789", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
        bban += "".join(rng.choice(alphabet[cls]) for _ in range(int(count)))
    iban = country + _iban_check(country, bban) + bban
    value = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban
    return value, (value,)


def corrupt_iban(value: str) -> str:
    """The same IBAN with its check digits off by one: checksum-invalid."""
    check = (int(value[2:4]) + 1) % 100
    return f"{value[:2]}{check:02d}{value[4:]}"


def make_ssn(rng: random.Random) -> Value:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", "-", " ", ""])
    value = f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"
    return value, (value,)


def make_email(rng: random.Random) -> Value:
    first, last = make_person(rng)[1]
    first = first.lower().replace("é", "e").replace("í", "i").replace("ç", "c").replace("ö", "o").replace("ü", "u")
    last = re.sub(
        r"[^a-z]", "", last.lower().replace("é", "e").replace("ü", "u").replace("\u0131", "i").replace("ş", "s")
    )
    first = re.sub(r"[^a-z]", "", first) or "user"
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}{rng.randint(1, 99)}", f"{first}_{last}", f"{last}.{first}"]
    )
    domain = rng.choice(
        [
            "gmail.com",
            "outlook.com",
            "proton.me",
            "acme-corp.co.uk",
            "uni-heidelberg.de",
            "yahoo.co.jp",
            "mail.ru",
            "example-clinic.org",
            "fastmail.fm",
            "icloud.com",
            "startup.io",
            "gov.in",
        ]
    )
    value = f"{local}@{domain}"
    return value, (value,)


def make_phone(rng: random.Random) -> Value:
    import phonenumbers

    region = rng.choice(["US", "US", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "ES", "IT", "NL", "MX"])
    for _ in range(200):
        example = phonenumbers.example_number_for_type(region, rng.choice([0, 1]))  # fixed line or mobile
        if example is None:
            continue
        national = str(example.national_number)
        # Same length and leading digits as the example, random tail: a plausible new number.
        keep = min(len(national), 3 if region in ("US", "MX") else 2)
        candidate = national[:keep] + "".join(rng.choice("0123456789") for _ in range(len(national) - keep))
        number = phonenumbers.parse(candidate, region)
        if not phonenumbers.is_valid_number(number):
            continue
        style = rng.choice(
            [
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.E164,
            ]
        )
        value = phonenumbers.format_number(number, style)
        if region == "US" and style == phonenumbers.PhoneNumberFormat.NATIONAL and rng.random() < 0.4:
            value = re.sub(r"\((\d{3})\) (\d{3})-(\d{4})", rng.choice([r"\1-\2-\3", r"\1.\2.\3"]), value)
        return value, (value,)
    raise RuntimeError(f"no valid {region} phone number generated")


def make_ip(rng: random.Random) -> Value:
    if rng.random() < 0.2:
        value = ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))
    else:
        first = rng.choice([10, 172, 192, rng.randint(11, 223)])
        value = f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return value, (value,)


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def make_password(rng: random.Random) -> Value:
    value = rng.choice(
        [
            _chars(rng, "abcdefghjkmnpqrstuvwxyz", 5) + rng.choice("!#$%&") + _chars(rng, "0123456789", 3),
            rng.choice(["Summer", "Falcon", "Orange", "Winter"]) + str(rng.randint(10, 2030)) + rng.choice("!?#"),
            "-".join(rng.choice(["correct", "horse", "battery", "staple", "river", "lamp"]) for _ in range(3))
            + str(rng.randint(1, 99)),
        ]
    )
    return value, (value,)


def make_secret(rng: random.Random) -> Value:
    """A vendor key, or a hex secret that only the word before it ("token", "key") marks."""
    if rng.random() < 0.3:
        value = _chars(rng, "0123456789abcdef", rng.choice([32, 40, 64]))
        return value, (value,)
    return make_api_key(rng)


def make_api_key(rng: random.Random) -> Value:
    kind = rng.randrange(8)
    upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    value = [
        lambda: "sk-proj-" + _chars(rng, _ALNUM + "_-", 48),
        lambda: "ghp_" + _chars(rng, _ALNUM, 36),
        lambda: "AKIA" + _chars(rng, upper, 16),
        lambda: "xoxb-" + "-".join(_chars(rng, "0123456789", 12) for _ in range(2)) + "-" + _chars(rng, _ALNUM, 24),
        lambda: "eyJhbGciOiJIUzI1NiJ9.eyJ" + _chars(rng, _ALNUM, 30) + "." + _chars(rng, _ALNUM + "_-", 43),
        lambda: "sk_live_" + _chars(rng, _ALNUM, 24),
        lambda: "AIza" + _chars(rng, _ALNUM + "_-", 35),
        lambda: "hf_" + _chars(rng, _ALNUM, 34),
    ][kind]()
    return value, (value,)


_STREETS = _w("Maple Oak Cedar Elm Washington Lincoln Highland Sunset Riverside Park Lake Hillcrest Jefferson")
_SUFFIXES = _w("Street St. Avenue Ave Road Rd. Boulevard Lane Drive Court Place Way Terrace")
_CITIES = [("Springfield", "IL", "62704"), ("Austin", "TX", "78701"), ("Portland", "OR", "97205")]
_CITIES += [("Denver", "CO", "80202"), ("Brooklyn", "NY", "11201"), ("Madison", "WI", "53703")]


def make_address(rng: random.Random) -> Value:
    roll = rng.randrange(7)
    number = str(rng.randint(1, 9899))
    if roll <= 2:  # US
        street = f"{number} {rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}"
        city, state, zip_code = rng.choice(_CITIES)
        unit = rng.choice(["", "", f", Apt {rng.randint(1, 40)}{rng.choice('ABC')}", f" Suite {rng.randint(100, 900)}"])
        tail = rng.choice([f", {city}, {state} {zip_code}", f", {city} {state} {zip_code}", ""])
        return street + unit + tail, (street, zip_code) if tail else (street,)
    if roll == 3:  # UK
        name = rng.choice(["Baker", "Victoria", "Church", "Mill", "Station"])
        street = f"{number} {name} {rng.choice(['Street', 'Road', 'Lane', 'Close', 'Gardens'])}"
        district = rng.choice(["NW1", "SW1A", "M4", "EH8", "B15"])
        postcode = f"{district} {rng.randint(1, 9)}{_chars(rng, 'ABDEFGHJLNPQRSTUWXYZ', 2)}"
        city = rng.choice(["London", "Manchester", "Edinburgh", "Birmingham"])
        return f"{street}, {city} {postcode}", (street, postcode)
    if roll == 4:  # German / Dutch
        stem = rng.choice(["Haupt", "Bahnhof", "Linden", "Schiller", "Goethe"])
        street = f"{stem}{rng.choice(['straße', 'strasse', 'weg', 'allee'])} {rng.randint(1, 120)}"
        return f"{street}, {rng.randint(10000, 99999)} {rng.choice(['Berlin', 'München', 'Hamburg', 'Köln'])}", (
            street,
        )
    if roll == 5:  # French / Spanish / Italian
        if rng.random() < 0.5:
            street = f"{rng.randint(1, 120)} rue {rng.choice(['de la Paix', 'Victor Hugo', 'des Lilas', 'du Moulin'])}"
        else:
            street = (
                f"{rng.choice(['Calle Mayor', 'Via Roma', 'Calle de Alcalá', 'Via Garibaldi'])} {rng.randint(1, 200)}"
            )
        return f"{street}, {rng.randint(10000, 99999)} {rng.choice(['Paris', 'Madrid', 'Roma', 'Lyon'])}", (street,)
    box = f"{rng.choice(['PO Box', 'P.O. Box', 'P.O. box'])} {rng.randint(10, 99999)}"
    city, state, zip_code = rng.choice(_CITIES)
    return f"{box}, {city}, {state} {zip_code}", (box,)


_MONTHS = _w("January February March April May June July August September October November December")


def make_dob(rng: random.Random) -> Value:
    year, month, day = rng.randint(1935, 2008), rng.randint(1, 12), rng.randint(1, 28)
    name = _MONTHS[month - 1]
    suffix = "th" if 4 <= day <= 20 or 24 <= day <= 30 else {1: "st", 2: "nd", 3: "rd"}[day % 10]
    value = rng.choice(
        [
            f"{month:02d}/{day:02d}/{year}",
            f"{day:02d}.{month:02d}.{year}",
            f"{year}-{month:02d}-{day:02d}",
            f"{name} {day}, {year}",
            f"{day} {name} {year}",
            f"{name[:3]} {day}, {year}",
            f"{day}-{name[:3]}-{year}",
            f"the {day}{suffix} of {name}, {year}",
            f"{month}/{day}/{str(year)[2:]}",
        ]
    )
    return value, (value,)


def make_mrn(rng: random.Random) -> Value:
    value = rng.choice(
        [
            _chars(rng, "0123456789", rng.randint(6, 10)),
            rng.choice("ABHMP") + _chars(rng, "0123456789", 7),
            f"{rng.randint(2005, 2024)}-{_chars(rng, '0123456789', 6)}",
            f"PT-{_chars(rng, '0123456789', 5)}",
        ]
    )
    return value, (value,)


MAKERS: dict[str, Callable[[random.Random], Value]] = {
    "PERSON": make_person,
    "EMAIL_ADDRESS": make_email,
    "PHONE_NUMBER": make_phone,
    "CREDIT_CARD": make_card,
    "IBAN_CODE": make_iban,
    "US_SSN": make_ssn,
    "IP_ADDRESS": make_ip,
    "API_KEY": make_api_key,  # vendor-prefixed: recognisable anywhere
    "SECRET": make_secret,  # kind API_KEY, in templates that say "key" or "token"
    "PASSWORD": make_password,  # kind API_KEY, in templates that say "password"
    "STREET_ADDRESS": make_address,
    "DATE_OF_BIRTH": make_dob,
    "MEDICAL_RECORD_NUMBER": make_mrn,
}

# Templates: {KIND} is a generated value; prompts with several slots mix kinds.
PII_TEMPLATES: dict[str, list[str]] = {
    "PERSON": [
        "Please draft an email to {PERSON} about the quarterly report.",
        "My name is {PERSON} and I need help rewriting my resume summary.",
        "{PERSON} called yesterday and asked about the contract renewal. What should I reply?",
        "Summarize this note from {PERSON}: the shipment is delayed until next week.",
        "Write a short, warm birthday message for my colleague {PERSON}.",
        "I had a meeting with {PERSON} today; draft a polite follow-up.",
        "Translate to Spanish: Dear {PERSON}, thank you for your order.",
        "Is it rude to remind {PERSON} twice about an unpaid invoice?",
        "Write a reference letter for {PERSON}, who worked with me for three years.",
        "Thanks for the help!\n\nBest regards,\n{PERSON}",
        "Can you proofread the speech I wrote for {PERSON}'s retirement party?",
        "Book a table for two under {PERSON}, Friday at 8.",
        "{PERSON} and I are planning a trip to Lisbon; suggest an itinerary.",
        "Ask {PERSON} whether the budget was approved.",
        "The tenant, {PERSON}, has not paid rent for two months. What are my options?",
        "Write a LinkedIn recommendation: {PERSON} was the best analyst on my team.",
        "According to {PERSON}, the release slipped to June. Draft a status update.",
        "Minutes: attendees {PERSON} and the finance team; action items below.",
    ],
    "EMAIL_ADDRESS": [
        "Send the invoice to {EMAIL_ADDRESS} by Friday.",
        "my email: {EMAIL_ADDRESS} - can you write a signature block for it?",
        "Contact me at {EMAIL_ADDRESS} if anything changes with the booking.",
        "Please cc {EMAIL_ADDRESS} on the thread about the launch.",
        "Why does my mail server reject messages from <{EMAIL_ADDRESS}>?",
        "Reply-To: {EMAIL_ADDRESS}\nSubject: refund\nWrite a polite answer.",
        "Unsubscribe {EMAIL_ADDRESS} from the newsletter list.",
    ],
    "PHONE_NUMBER": [
        "Call me on {PHONE_NUMBER} after 6pm.",
        "My mobile number is {PHONE_NUMBER}, please text me the confirmation.",
        "You can reach the front desk at {PHONE_NUMBER}.",
        "Format this contact card: phone {PHONE_NUMBER}, office hours 9-5.",
        "Tel: {PHONE_NUMBER}. Write a voicemail greeting for this line.",
        "Is {PHONE_NUMBER} a valid number for WhatsApp?",
        "Leave a message at {PHONE_NUMBER} if I don't pick up.",
        "Emergency contact: {PHONE_NUMBER} (my sister).",
    ],
    "CREDIT_CARD": [
        "My card number is {CREDIT_CARD}, why was the payment declined?",
        "Charge {CREDIT_CARD} for the annual plan, expiry 08/27.",
        "I typed {CREDIT_CARD} into the checkout form and it froze.",
        "Visa {CREDIT_CARD} - please help me dispute this transaction.",
        "Someone used {CREDIT_CARD} at a gas station I have never been to.",
    ],
    "IBAN_CODE": [
        "Please transfer the deposit to IBAN {IBAN_CODE}.",
        "My bank details: {IBAN_CODE}, account holder as on the invoice.",
        "Is {IBAN_CODE} a German or a Dutch account?",
        "Write a payment reminder that asks them to pay into {IBAN_CODE}.",
        "Refund to {IBAN_CODE}, reference 'order 4471'.",
    ],
    "US_SSN": [
        "My SSN is {US_SSN}, which box of the W-4 does it go in?",
        "Social security number: {US_SSN}. Fill out the rest of the form for me.",
        "The applicant's SSN {US_SSN} was rejected by the portal.",
        "Can you check if {US_SSN} is a valid social security number format?",
        "Employee record: name on file, SSN: {US_SSN}, start date next Monday.",
    ],
    "IP_ADDRESS": [
        "The server at {IP_ADDRESS} keeps timing out, how do I debug it?",
        "Block {IP_ADDRESS} in the firewall, it is spamming our login page.",
        "My home IP is {IP_ADDRESS}; is it exposed to the internet?",
        "ssh keeps failing for host {IP_ADDRESS} with 'connection refused'.",
        "nginx log: {IP_ADDRESS} - - GET /admin 403. Is this an attack?",
    ],
    "API_KEY": [
        "Here is my key {SECRET}, why does the API return 401?",
        "export OPENAI_API_KEY={SECRET}\nThis still fails in my script.",
        'config = {{"api_key": "{SECRET}", "timeout": 30}}  # why is this rejected?',
        "My token is {SECRET} - can you check the scopes?",
        "Authorization: Bearer {SECRET}\nThe request gets a 403, what is wrong?",
        "the password is {PASSWORD}, write a script that logs in with it",
        "DB_PASSWORD={PASSWORD}\nDB_HOST=db.internal - why can't the app connect?",
        "Why does `curl -H 'X-Api-Key: {SECRET}' https://api.example.com` fail?",
        "I accidentally committed {API_KEY} to a public repo, what now?",
        "psql 'postgresql://admin:{PASSWORD}@10.0.3.7:5432/app' hangs, why?",
    ],
    "STREET_ADDRESS": [
        "Ship it to {STREET_ADDRESS}, please.",
        "I live at {STREET_ADDRESS}. Which school district is that?",
        "Write a change-of-address letter: my new address is {STREET_ADDRESS}.",
        "Our office moved to {STREET_ADDRESS} last month.",
        "Deliver the flowers to {STREET_ADDRESS} on Saturday morning.",
        "Return address: {STREET_ADDRESS}\nWrite the envelope layout.",
        "Is {STREET_ADDRESS} within walking distance of a train station?",
    ],
    "DATE_OF_BIRTH": [
        "I was born on {DATE_OF_BIRTH}. How old will I be next year?",
        "DOB: {DATE_OF_BIRTH}. Fill in the insurance form for me.",
        "My date of birth is {DATE_OF_BIRTH}, what is my zodiac sign?",
        "Her birthday is {DATE_OF_BIRTH} and she wants a surprise party.",
        "Patient born {DATE_OF_BIRTH}, presenting with chest pain.",
        "Birthdate {DATE_OF_BIRTH} - am I eligible for the senior discount?",
        "My son's date of birth: {DATE_OF_BIRTH}. Which vaccines are due?",
    ],
    "MEDICAL_RECORD_NUMBER": [
        "MRN: {MEDICAL_RECORD_NUMBER}. Summarize the discharge notes below.",
        "Please pull the labs for medical record number {MEDICAL_RECORD_NUMBER}.",
        "Patient ID {MEDICAL_RECORD_NUMBER} missed the follow-up appointment.",
        "Update the chart for MRN {MEDICAL_RECORD_NUMBER} with the new dosage.",
        "Lab results attached (medical record no. {MEDICAL_RECORD_NUMBER}); explain the values.",
    ],
    "MIXED": [
        "Hi, I'm {PERSON}, my phone is {PHONE_NUMBER} and my email is {EMAIL_ADDRESS}.",
        "Patient {PERSON}, DOB {DATE_OF_BIRTH}, MRN {MEDICAL_RECORD_NUMBER}: write a referral.",
        "Invoice for {PERSON}, {STREET_ADDRESS}. Pay to {IBAN_CODE}.",
        "{PERSON} (SSN {US_SSN}) lives at {STREET_ADDRESS}.",
        "Login from {IP_ADDRESS} used the key {API_KEY}; notify {EMAIL_ADDRESS}.",
    ],
}

CLEAN_TEMPLATES: list[str] = [
    "What is the capital of {COUNTRY}?",
    "Explain Python decorators with an example.",
    "Call the function at {TIME} every day using a scheduler.",
    "Upgrade the project from Python {VERSION} to the latest release.",
    "Order #{ORDER} has not shipped yet, what are my options?",
    "What is {BIG} * {SMALL}?",
    "Is {BIG} a prime number?",
    "Compute the sum of the digits of {BIG}{SMALL}.",
    "Convert {BIG} seconds to days, hours and minutes.",
    "What is 2^64? I got {POW}.",
    "Write a regex that validates a US social security number like ###-##-####.",
    "How do I hash a password with bcrypt in Python?",
    "What is a bearer token and how is it different from an API key?",
    "The key to a good sourdough is patience. Give me a schedule.",
    "Our meeting is on {ISO_DATE}; draft an agenda.",
    "Python 3.12 was released on October 2, 2023. What changed?",
    "The deadline is {US_DATE}, how many working days are left?",
    "Product SKU {SKU} is out of stock; suggest an alternative.",
    "Track package {TRACKING} for me.",
    "ISBN {ISBN}: what kind of book is this?",
    "Invoice INV-{YEAR}-{ORDER} is overdue by 30 days. Draft a reminder.",
    "git checkout {SHA} fails with 'reference is not a tree'.",
    "docker pull python:{VERSION}-slim gives a manifest error.",
    "Run uvicorn app:app --host 0.0.0.0 --port {PORT} behind nginx.",
    "curl http://127.0.0.1:{PORT}/health returns 502, why?",
    "def login(user, password):\n    return check_password(password, user.password_hash)\nIs this safe?",
    "token = tokenizer.encode(text)\nprint(len(token))  # why is this {SMALL}?",
    'API_KEY = os.environ["API_KEY"]\nHow do I load this from a .env file instead?',
    "secret_key = settings.SECRET_KEY  # Django: where should this live?",
    "Explain the token bucket algorithm for rate limiting.",
    "SELECT id, email FROM users WHERE created_at > '{ISO_DATE}' LIMIT {SMALL};",
    "for i in range({BIG}):\n    total += i * {SMALL}",
    "What is the time complexity of quicksort on {BIG} elements?",
    "Summarize the causes of the French Revolution in {SMALL} bullet points.",
    "Translate 'good morning, how are you?' into {LANGUAGE}.",
    "What does MRN stand for in a hospital?",
    "How do I compute a Luhn checksum for a card number?",
    "Write a haiku about {TOPIC}.",
    "Give me {SMALL} tips for a job interview in {TOPIC}.",
    "What is the difference between TCP and UDP?",
    "My laptop battery drains from 100% to {SMALL}% in two hours, is that normal?",
    "Convert {SMALL} miles to kilometers.",
    "What year did the Berlin Wall fall, and why?",
    "Recommend a road trip route along the {COUNTRY} coast.",
    "How many calories are in {SMALL} grams of rice?",
    "Set up a cron job that runs at {TIME} on weekdays.",
    "The build number is {BIG}; how do I tag it in CI?",
    "Our revenue grew from ${BIG} to ${BIG} - what is the growth rate?",
    "The matrix has {SMALL} rows and {SMALL} columns; how do I transpose it in numpy?",
    "Explain how IPv4 subnetting works with a /24 network.",
    "Room {SMALL} on floor {SMALL} is booked from {TIME}; is that too early?",
    "Write a SQL query that counts orders per month for {YEAR}.",
    "What is the boiling point of water at {SMALL} meters altitude?",
    "Which is bigger: {BIG} or {BIG}?",
    "Version {VERSION} broke our pipeline; how do I pin the previous version?",
    "Explain what a JWT is and how its signature is verified.",
    "My password keeps getting rejected as too weak; what makes a strong one?",
    "Plan a {SMALL}-day trip to {COUNTRY} on a budget.",
    "The part number is {SKU}-{SMALL}; is it compatible with model {SKU}?",
    "Sort these numbers: {BIG}, {SMALL}, {BIG}, {SMALL}.",
    "How do I install Visual Studio Code on Ubuntu {VERSION}?",
    "Compare Google Cloud and Amazon Web Services for a startup.",
    "What does Goldman Sachs do, in simple terms?",
    "Explain the fall of the Berlin Wall in {SMALL} sentences.",
    "Plan a trip to Costa Rica and Buenos Aires in {YEAR}.",
    "Write a review of Star Wars: A New Hope.",
    "Deploy to Microsoft Azure with GitHub Actions.",
    "Summarize the plot of Pride and Prejudice.",
    "Which is better for a beginner, Stack Overflow or the official docs?",
    "Write a limerick about a cat named Whiskers.",
    "Convert this CSV header to JSON keys: id,first_name,last_name,email,phone",
    "Generate {SMALL} fake test users with placeholder emails like user@example.com.",
    "What is the population of New York City?",
    "How do I reset my router's admin password to the default?",
    "Room temperature is 21.5 C and humidity 45%; is that comfortable?",
    "My flight UA{SMALL} leaves at {TIME}; how early should I arrive?",
    "What happened on {MONTH_DAY}, 1969?",
    "Dear team, please find the agenda attached. Rewrite this more formally.",
    "The firmware 2.4.1.7 update bricked my device, how do I roll back?",
    "Explain the regex \\d{{3}}-\\d{{2}}-\\d{{4}} step by step.",
]

FAMOUS_TEMPLATES: list[str] = [
    "Who was {FAMOUS}?",
    "Summarize the main achievements of {FAMOUS}.",
    "Write a short poem in the style of {FAMOUS}.",
    "What did {FAMOUS} contribute to science or culture?",
]
_FAMOUS = [
    "Albert Einstein", "Marie Curie", "Abraham Lincoln", "Frida Kahlo", "Nelson Mandela", "Ada Lovelace",
    "Wolfgang Amadeus Mozart", "Mahatma Gandhi", "Chinua Achebe", "Hayao Miyazaki", "Simone de Beauvoir",
]  # fmt: skip


def _filler(slot: str, rng: random.Random) -> str:
    if slot == "COUNTRY":
        return rng.choice(["France", "Kenya", "Japan", "Brazil", "Canada", "Norway", "Vietnam", "Peru"])
    if slot == "TIME":
        return rng.choice(["10:30", "7:45 am", "23:15", "noon", "6 pm"])
    if slot == "VERSION":
        return f"3.{rng.randint(8, 13)}.{rng.randint(0, 12)}"
    if slot == "ORDER":
        return str(rng.randint(10_000, 999_999_999))
    if slot == "BIG":
        return str(rng.randint(10**6, 10**16))
    if slot == "SMALL":
        return str(rng.randint(2, 999))
    if slot == "POW":
        return "18446744073709551616"
    if slot == "ISO_DATE":
        return f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if slot == "US_DATE":
        return f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2024, 2027)}"
    if slot == "SKU":
        return f"{_chars(rng, 'ABCDEFGHJKLMNPRSTUVWXYZ', 3)}-{rng.randint(100, 9999)}"
    if slot == "TRACKING":
        return "1Z" + _chars(rng, "ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 16)
    if slot == "ISBN":
        return f"978-{rng.randint(0, 9)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}"
    if slot == "YEAR":
        return str(rng.randint(2015, 2026))
    if slot == "SHA":
        return _chars(rng, "0123456789abcdef", rng.choice([7, 40]))
    if slot == "PORT":
        return str(rng.choice([8000, 8080, 3000, 5432, 9090]))
    if slot == "LANGUAGE":
        return rng.choice(["French", "Swahili", "Korean", "Portuguese", "Hindi"])
    if slot == "TOPIC":
        return rng.choice(["autumn rain", "data engineering", "the ocean", "nursing", "compilers"])
    if slot == "MONTH_DAY":
        return f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}"
    if slot == "FAMOUS":
        return rng.choice(_FAMOUS)
    raise KeyError(slot)


_SLOT = re.compile(r"\{([A-Z_]+)\}")


def _fill(template: str, rng: random.Random, group: str) -> CorpusPrompt:
    parts: list[str] = []
    spans: list[PiiSpan] = []
    cursor, length = 0, 0
    for m in _SLOT.finditer(template):
        literal = template[cursor : m.start()].replace("{{", "{").replace("}}", "}")
        parts.append(literal)
        length += len(literal)
        slot = m.group(1)
        if slot in MAKERS:
            value, cores = MAKERS[slot](rng)
            kind = "API_KEY" if slot in ("SECRET", "PASSWORD") else slot
            spans.append(PiiSpan(kind, length, length + len(value), cores))
        else:
            value = _filler(slot, rng)
        parts.append(value)
        length += len(value)
        cursor = m.end()
    parts.append(template[cursor:].replace("{{", "{").replace("}}", "}"))
    return CorpusPrompt("".join(parts), group, tuple(spans))


def generate_corpus(seed: int, n: int = 330) -> list[CorpusPrompt]:
    """`n` prompts with PII (every kind, about n/12 each, plus mixed), `n` clean, and n/10 famous."""
    rng = random.Random(seed)
    kinds = sorted(PII_TEMPLATES)
    corpus = [_fill(rng.choice(PII_TEMPLATES[kinds[i % len(kinds)]]), rng, "pii") for i in range(n)]
    corpus += [_fill(rng.choice(CLEAN_TEMPLATES), rng, "clean") for _ in range(n)]
    corpus += [_fill(rng.choice(FAMOUS_TEMPLATES), rng, "famous") for _ in range(max(1, n // 10))]
    return corpus


# --- the measurement ----------------------------------------------------------------------------


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _leaked(core: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(core)}(?!\w)", text) is not None


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(guard: Any, corpus: list[CorpusPrompt], *, show_errors: bool) -> dict[str, Any]:
    from modelfarm.types import Message

    kinds = sorted(k for k in MAKERS if k not in ("SECRET", "PASSWORD"))
    seen = dict.fromkeys(kinds, 0)
    found = dict.fromkeys(kinds, 0)
    leaks = dict.fromkeys(kinds, 0)
    leaked_prompts = clean_flagged = famous_flagged = 0
    n_clean = n_famous = 0
    for prompt in corpus:
        messages = [Message("user", prompt.text)]
        findings = guard.scan(messages)
        if prompt.group == "clean":
            n_clean += 1
            clean_flagged += bool(findings)
            if findings and show_errors:
                shown = [(f.kind, prompt.text[f.start : f.end]) for f in findings]
                print(f"FALSE POSITIVE {shown} in {prompt.text!r}")
            continue
        if prompt.group == "famous":
            n_famous += 1
            famous_flagged += bool(findings)
            continue
        redacted, _ = guard.redact(messages, findings)
        leaked_here = False
        for span in prompt.pii:
            seen[span.kind] += 1
            hit = any(f.kind == span.kind and _overlaps(f.start, f.end, span.start, span.end) for f in findings)
            found[span.kind] += hit
            if any(_leaked(core, redacted[0].content) for core in span.cores):
                leaks[span.kind] += 1
                leaked_here = True
                if show_errors:
                    print(f"LEAK {span.kind} {span.cores} in {redacted[0].content!r}")
            if show_errors and not hit:
                got = [(f.kind, prompt.text[f.start : f.end]) for f in findings]
                print(f"MISSED {span.kind} {prompt.text[span.start : span.end]!r} in {prompt.text!r}; got {got}")
        leaked_prompts += leaked_here
    return {
        "recall": {k: round(found[k] / seen[k], 3) if seen[k] else None for k in kinds},
        "spans": seen,
        "leaks_by_kind": leaks,
        "leaks": leaked_prompts,
        "n_pii": sum(p.group == "pii" for p in corpus),
        "n_clean": n_clean,
        "fp_rate": round(clean_flagged / n_clean, 4) if n_clean else None,
        "n_famous": n_famous,
        "famous_flagged_rate": round(famous_flagged / n_famous, 3) if n_famous else None,
    }


def time_scans(guard: Any, corpus: list[CorpusPrompt], reps: int) -> dict[str, dict[str, float]]:
    from modelfarm.types import Message

    short = "Hi, I'm Maria Keller, call me on +44 20 7946 0958 about the invoice for order 4471."
    # About 500 tokens (~380 words): one prompt with PII to every two without, in corpus order.
    pii = [p for p in corpus if p.group == "pii"]
    clean = [p for p in corpus if p.group == "clean"]
    words: list[str] = []
    for i in range(len(pii)):
        for prompt in (pii[i], clean[2 * i % len(clean)], clean[(2 * i + 1) % len(clean)]):
            words += prompt.text.split()
        if len(words) >= 380:
            break
    long = " ".join(words[:380])
    out: dict[str, dict[str, float]] = {}
    for name, text in (("20_tokens", short), ("500_tokens", long)):
        messages = [Message("user", text)]
        for _ in range(3):
            guard.scan(messages)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            guard.scan(messages)
            samples.append((time.perf_counter() - t0) * 1000)
        out[name] = {"p50_ms": round(_percentile(samples, 0.5), 2), "p99_ms": round(_percentile(samples, 0.99), 2)}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Recall, leaks, false positives and scan time of the privacy guard on a generated corpus.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--seed", type=int, default=1, help="corpus seed; another seed gives another corpus")
    ap.add_argument("--n", type=int, default=330, help="prompts with PII, and as many without")
    ap.add_argument("--no-ner", action="store_true", help="run the guard without spaCy NER (patterns only)")
    ap.add_argument("--reps", type=int, default=50, help="timed scans per prompt length")
    ap.add_argument("--show-errors", action="store_true", help="print every missed span and false positive")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from modelfarm.routing.privacy import PrivacyGuard

    guard = PrivacyGuard(ner=not args.no_ner)
    t0 = time.perf_counter()
    guard.load()
    load_s = time.perf_counter() - t0
    corpus = generate_corpus(args.seed, args.n)
    result = evaluate(guard, corpus, show_errors=args.show_errors)
    timing = time_scans(guard, corpus, args.reps)

    print(f"privacy guard, seed {args.seed}, ner={'off' if args.no_ner else 'on'}, load {load_s:.1f} s")
    print(f"{'kind':<24}{'spans':>7}{'recall':>9}{'leaks':>7}")
    for kind, recall in result["recall"].items():
        print(f"{kind:<24}{result['spans'][kind]:>7}{recall:>9.3f}{result['leaks_by_kind'][kind]:>7}")
    print(f"prompts with PII: {result['n_pii']}, leaking after redaction: {result['leaks']}  [target 0]")
    print(f"clean prompts: {result['n_clean']}, false-positive rate: {result['fp_rate']:.1%}  [target <= 5%]")
    print(f"famous-person prompts flagged (by design, not counted): {result['famous_flagged_rate']:.0%}")
    for name, t in timing.items():
        print(f"scan {name:<11} p50 {t['p50_ms']:7.1f} ms   p99 {t['p99_ms']:7.1f} ms")
    # Wall times move with whatever else the machine runs: the load average says how busy it was.
    loadavg = round(os.getloadavg()[0], 2)
    print(f"1-minute load average during the run: {loadavg} on {os.cpu_count()} CPUs")
    summary = {
        "seed": args.seed,
        "ner": not args.no_ner,
        "load_s": round(load_s, 2),
        **result,
        "scan": timing,
        "loadavg_1m": loadavg,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if result["leaks"] == 0 and result["fp_rate"] <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
