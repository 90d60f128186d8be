"""The privacy guard on real presidio + spaCy: what it finds, what it leaves, how redaction undoes.

One guard (the real small English model) is loaded per module. Phrasings here are written
independently of the benchmark corpus templates, so they also check that the recognizers
were not fitted to that corpus.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from modelfarm.routing.privacy import KINDS, Finding, PrivacyGuard, Redaction
from modelfarm.types import Message


@pytest.fixture(scope="module")
def guard() -> PrivacyGuard:
    g = PrivacyGuard()
    g.load()
    return g


def found(guard: PrivacyGuard, text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every finding in a one-message request."""
    return [(f.kind, text[f.start : f.end]) for f in guard.scan([Message("user", text)])]


# (kind, prompt, the value that must be found as that kind)
POSITIVES = [
    ("EMAIL_ADDRESS", "Forward the receipts to m.okonkwo@fastmail.com please.", "m.okonkwo@fastmail.com"),
    ("EMAIL_ADDRESS", "reply-to header says lena_vogt88@posteo.de, is that spoofed?", "lena_vogt88@posteo.de"),
    ("PHONE_NUMBER", "Ring me at +49 151 23456789 when you land.", "+49 151 23456789"),
    ("PHONE_NUMBER", "the clinic's number is (415) 867-2390, can you draft a voicemail?", "(415) 867-2390"),
    ("PHONE_NUMBER", "WhatsApp: +91 98765 43210", "+91 98765 43210"),
    ("CREDIT_CARD", "The card 4539 1488 0343 6467 was charged twice this month.", "4539 1488 0343 6467"),
    ("CREDIT_CARD", "amex 378282246310005 exp 04/27, why declined?", "378282246310005"),
    ("IBAN_CODE", "Wire it to GB82 WEST 1234 5698 7654 32 by Monday.", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN_CODE", "my account: NL91ABNA0417164300", "NL91ABNA0417164300"),
    ("US_SSN", "SSN on the form: 536-22-1987", "536-22-1987"),
    ("US_SSN", "her social security number is 536221987 and the form keeps rejecting it", "536221987"),
    ("IP_ADDRESS", "Why can't I ping 172.16.254.3 from the VPN?", "172.16.254.3"),
    (
        "IP_ADDRESS",
        "Our API server is on 2001:db8:85a3::8a2e:370:7334, is IPv6 the problem?",
        "2001:db8:85a3::8a2e:370:7334",
    ),
    (
        "API_KEY",
        "use ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 for the CI job",
        "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    ),
    ("API_KEY", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE in my .env, is that safe?", "AKIAIOSFODNN7EXAMPLE"),
    ("API_KEY", "slack bot token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", None),
    ("API_KEY", "my wifi password: Tr0ub4dor&3 - write it on a card for guests", "Tr0ub4dor&3"),
    ("PERSON", "Could you write a thank-you note to Svetlana Morozova for the flowers?", "Svetlana Morozova"),
    ("PERSON", "Dr. Kwame Mensah reviewed the scan and wants a second opinion.", "Kwame Mensah"),
    ("PERSON", "I'm Aarav Mehta, a nurse in Pune; help me write a cover letter.", "Aarav Mehta"),
    ("STREET_ADDRESS", "Send the contract to 4821 Glenwood Drive, Apt 12B, Raleigh, NC 27612.", "4821 Glenwood Drive"),
    ("STREET_ADDRESS", "Pick me up at 17 Rose Lane tomorrow at 8.", "17 Rose Lane"),
    ("STREET_ADDRESS", "Mail goes to PO Box 7731, Tulsa, OK 74101.", "PO Box 7731"),
    ("DATE_OF_BIRTH", "DOB 1979-11-02, blood type O+. Summarize for the intake nurse.", "1979-11-02"),
    ("DATE_OF_BIRTH", "He was born on 14 February 1991 in Accra.", "14 February 1991"),
    ("DATE_OF_BIRTH", "birthday: 07/04/1988 - which star sign am I?", "07/04/1988"),
    ("MEDICAL_RECORD_NUMBER", "Attach the ECG to MRN 00937152 before rounds.", "00937152"),
    ("MEDICAL_RECORD_NUMBER", "The patient ID is H-4471902; pull her allergy list.", "H-4471902"),
]


@pytest.mark.parametrize(
    ("kind", "text", "value"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)]
)
def test_each_kind_is_found(guard: PrivacyGuard, kind: str, text: str, value: str | None) -> None:
    hits = [v for k, v in found(guard, text) if k == kind]
    assert hits, f"no {kind} in {text!r}: {found(guard, text)}"
    if value is not None:
        assert any(value in v for v in hits), f"{value!r} not covered by {hits}"


def test_every_kind_has_two_phrasings() -> None:
    for kind in KINDS:
        assert sum(k == kind for k, _, _ in POSITIVES) >= 2, kind


NEGATIVES = [
    "What is the capital of France?",
    "Explain Python decorators with a short example.",
    "Call the function at 10:30 and log the result.",
    "We are still on Python 3.11.7; should we upgrade to 3.12?",
    "Order number 7734512 shipped yesterday, when will it arrive?",
    "What is 123456789 * 987654321?",
    "Is 2305843009213693951 a Mersenne prime?",
    "SKU KX-4410-B is out of stock.",
    "The standup moved to 2025-03-14 at 9am.",
    "How do I store a password hash with argon2?",
    "What is the difference between an access token and a refresh token?",
    "git revert 9fceb02d0ae598e95dc970b74767f19372d61af8 undid too much.",
    "for (int i = 0; i < 1000000; i++) { sum += i; }",
    "Bind the server to 0.0.0.0 and proxy it from 127.0.0.1:8080.",
    "Summarize chapter 3 of the report in five bullet points.",
    "Upgrade the firmware to version 1.4.2.8 first.",
    "Convert 5 miles down the road to kilometers, roughly.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_prompts_without_pii_are_not_flagged(guard: PrivacyGuard, text: str) -> None:
    assert found(guard, text) == []


def test_luhn_invalid_card_is_not_a_card(guard: PrivacyGuard) -> None:
    valid, invalid = "4539 1488 0343 6467", "4539 1488 0343 6468"  # last digit off by one
    assert ("CREDIT_CARD", valid) in found(guard, f"card {valid} please")
    assert all(k != "CREDIT_CARD" for k, _ in found(guard, f"card {invalid} please"))


def test_checksum_invalid_iban_is_not_an_iban(guard: PrivacyGuard) -> None:
    valid, invalid = "DE89 3704 0044 0532 0130 00", "DE88 3704 0044 0532 0130 00"  # wrong check digits
    assert ("IBAN_CODE", valid) in found(guard, f"IBAN {valid}")
    assert all(k != "IBAN_CODE" for k, _ in found(guard, f"IBAN {invalid}"))


REQUEST = [
    Message("system", "You help Oksana Bondarenko with her paperwork. Her email is oksana.b@example-mail.net."),
    Message("user", "Hi, it's Oksana Bondarenko again. Call me on +44 7700 900461 or email oksana.b@example-mail.net."),
    Message("assistant", "Sure, Oksana Bondarenko. What do you need?"),
    Message("user", "Update my address to 12 Harbour Road, Cork and my DOB to 03/09/1990."),
]
ORIGINALS = ["Oksana", "Bondarenko", "oksana.b@example-mail.net", "+44 7700 900461", "12 Harbour Road", "03/09/1990"]


def test_redaction_round_trip(guard: PrivacyGuard) -> None:
    findings = guard.scan(REQUEST)
    redacted, redaction = guard.redact(REQUEST, findings)
    assert [m.role for m in redacted] == [m.role for m in REQUEST]
    for message in redacted:
        for value in ORIGINALS:
            assert value not in message.content, (value, message.content)
    # A model answer quoting placeholders gets the originals back; so do the messages themselves.
    for original, message in zip(REQUEST, redacted, strict=True):
        assert redaction.restore(message.content) == original.content


def test_same_person_gets_one_placeholder_across_messages(guard: PrivacyGuard) -> None:
    redacted, redaction = guard.redact(REQUEST, guard.scan(REQUEST))
    person = [p for p, v in redaction.placeholders.items() if v == "Oksana Bondarenko"]
    assert len(person) == 1
    assert all(person[0] in m.content for m in redacted[:3])
    email = [p for p, v in redaction.placeholders.items() if v == "oksana.b@example-mail.net"]
    assert len(email) == 1 and email[0] in redacted[0].content and email[0] in redacted[1].content


def test_a_value_found_once_is_redacted_everywhere(guard: PrivacyGuard) -> None:
    # "Mensah" alone, later, carries no cue; it is still the found person's name.
    messages = [Message("user", "My landlord Kofi Mensah wants the deposit."), Message("user", "Mensah said no.")]
    redacted, _ = guard.redact(messages, guard.scan(messages))
    assert "Mensah" not in redacted[0].content + redacted[1].content


def test_findings_point_at_the_right_message(guard: PrivacyGuard) -> None:
    messages = [Message("user", "nothing here"), Message("user", "mail me: ada@lovelace.dev")]
    findings = guard.scan(messages)
    assert [(f.kind, f.message) for f in findings] == [("EMAIL_ADDRESS", 1)]
    f = findings[0]
    assert messages[1].content[f.start : f.end] == "ada@lovelace.dev"


def test_finding_and_redaction_reprs_carry_no_pii(guard: PrivacyGuard) -> None:
    findings = guard.scan(REQUEST)
    _, redaction = guard.redact(REQUEST, findings)
    shown = repr(findings) + str(findings) + repr(redaction)
    for value in ORIGINALS:
        assert value not in shown
    assert "text" not in Finding.__dataclass_fields__


PLACEHOLDERS = {"<PERSON_1>": "Ngozi Eze", "<PERSON_12>": "Li Wei", "<EMAIL_ADDRESS_1>": "n@eze.ng"}
ANSWER = "Dear <PERSON_1>, I forwarded it to <PERSON_12> (<EMAIL_ADDRESS_1>). 2 < 3, <PERSON_1>!"
RESTORED = "Dear Ngozi Eze, I forwarded it to Li Wei (n@eze.ng). 2 < 3, Ngozi Eze!"


def test_restore_puts_originals_back() -> None:
    assert Redaction(dict(PLACEHOLDERS)).restore(ANSWER) == RESTORED


@pytest.mark.parametrize("cut", range(len(ANSWER) + 1))
def test_stream_restorer_handles_a_split_at_every_position(cut: int) -> None:
    restorer = Redaction(dict(PLACEHOLDERS)).stream()
    out = restorer.feed(ANSWER[:cut]) + restorer.feed(ANSWER[cut:]) + restorer.flush()
    assert out == RESTORED


def test_stream_restorer_one_character_at_a_time_never_emits_a_partial_placeholder() -> None:
    restorer = Redaction(dict(PLACEHOLDERS)).stream()
    pieces = [restorer.feed(c) for c in ANSWER]
    assert "".join(pieces) + restorer.flush() == RESTORED
    assert not any("<PER" in p or "<EMA" in p for p in pieces)


def test_stream_restorer_releases_a_false_start() -> None:
    restorer = Redaction(dict(PLACEHOLDERS)).stream()
    assert restorer.feed("a <PER") == "a "
    assert restorer.feed("HAPS not>") == "<PERHAPS not>"
    assert restorer.feed("x <") == "x "
    assert restorer.flush() == "<"


def test_scan_is_thread_safe(guard: PrivacyGuard) -> None:
    texts = [text for _, text, _ in POSITIVES]
    expected = [found(guard, t) for t in texts]
    results: dict[int, list[list[tuple[str, str]]]] = {}

    def work(worker: int) -> None:
        results[worker] = [found(guard, t) for t in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


def test_patterns_only_guard_needs_no_model() -> None:
    g = PrivacyGuard(ner=False)
    kinds = {f.kind for f in g.scan([Message("user", "Mrs. Abena Owusu, card 4539 1488 0343 6467, SSN 536-22-1987")])}
    assert kinds == {"PERSON", "CREDIT_CARD", "US_SSN"}


def test_min_score_is_validated() -> None:
    with pytest.raises(ValueError, match="min_score"):
        PrivacyGuard(min_score=1.5)


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "privacy_corpus.py"
    spec = importlib.util.spec_from_file_location("privacy_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_generated_corpus_leaks_nothing_and_flags_few_clean_prompts(guard: PrivacyGuard) -> None:
    bench = _benchmark()
    corpus = bench.generate_corpus(seed=11, n=60)
    result = bench.evaluate(guard, corpus, show_errors=False)
    assert result["leaks"] == 0
    assert result["fp_rate"] <= 0.05


def test_a_name_in_long_nameless_prose_is_found_at_its_place(guard: PrivacyGuard) -> None:
    # NER skips sentences that cannot hold a name; the one that can must still be read, and the
    # offsets must point into the original text.
    prose = "the quarterly report covers revenue growth and the migration of our billing system. " * 20
    text = prose + "Yesterday I met Rosalind Okafor-Lindqvist at the office. " + prose
    findings = guard.scan([Message("user", text)])
    people = [f for f in findings if f.kind == "PERSON"]
    assert people and text[people[0].start : people[0].end].startswith("Rosalind")


def test_dates_of_birth_in_prose_keep_their_ner_context(guard: PrivacyGuard) -> None:
    text = "the form is filled in. " * 10 + "she was born on the fourth of july, nineteen eighty. " + "ok. " * 5
    kinds = {f.kind for f in guard.scan([Message("user", text)])}
    assert "DATE_OF_BIRTH" in kinds


@pytest.mark.parametrize(
    ("sentence", "name"),
    [
        ("There will be a short call with Rosalind Okafor-Lindqvist on the budget.", "Rosalind"),
        ("However Tomasz Wieczorek-Baptiste said the numbers were off.", "Tomasz"),
        ("Grant Abernathy-Quist wants the slides before lunch.", "Grant"),
    ],
)
def test_a_sentence_opener_does_not_hide_a_name(guard: PrivacyGuard, sentence: str, name: str) -> None:
    # Sentences whose only capitalised word opens them ("There", "However") skip NER; a name
    # anywhere else in the sentence, or a first word that is also a given name, keeps it in.
    prose = "There will be forty people across the teams, and the agenda is not final yet. " * 8
    text = prose + sentence + " " + prose
    people = [f for f in guard.scan([Message("user", text)]) if f.kind == "PERSON"]
    assert any(text[f.start : f.end].startswith(name) for f in people), people
