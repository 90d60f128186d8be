"""API keys, tokens and passwords (kind API_KEY): presidio has no recognizer for secrets.

Three kinds of evidence, strongest first:
1. a vendor prefix with a fixed shape (`sk-`, `ghp_`, `AKIA`, `xoxb-`, a JWT, a PEM private key);
2. a credential inside a URL (`https://user:pass@host`, `?api_key=...`);
3. a value assigned to a word such as key, token, secret or password, if it looks like a secret
   rather than prose or code (`password = request.form["pw"]` names a variable, not a secret).
A bare high-entropy string with no cue (a commit hash, a checksum) is not reported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from presidio_analyzer.nlp_engine import NlpArtifacts

from modelfarm.routing.privacy.recognizers import Span, SpanRecognizer

_NOT_TOKEN = r"(?<![A-Za-z0-9_-])"
_PREFIXED: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        _NOT_TOKEN + r"sk-(?:proj-|ant-(?:api\d\d-)?|live-|test-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        _NOT_TOKEN + r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
        _NOT_TOKEN + r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
        _NOT_TOKEN + r"github_pat_[A-Za-z0-9_]{40,}",
        _NOT_TOKEN + r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab
        r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}(?![A-Z0-9])",  # AWS key id
        _NOT_TOKEN + r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
        _NOT_TOKEN + r"AIza[0-9A-Za-z_-]{35}",  # Google
        _NOT_TOKEN + r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
        _NOT_TOKEN + r"npm_[A-Za-z0-9]{36}",
        _NOT_TOKEN + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----",
    )
)
_URL_USERINFO = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<cred>[^\s:/@]+:[^\s@/]+)@", re.I)
_URL_PARAM = re.compile(
    r"[?&](?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|key|secret|sig|signature|password"
    r"|pwd|client[_-]?secret)=(?P<value>[^&\s#\"'<>]{8,})",
    re.I,
)

_PASSWORD_WORDS = r"password|passwd|passphrase|passcode|pwd|pass"
_KEY_WORDS = (
    r"api[_\s-]?key|apikey|access[_\s-]?key(?:[_\s-]?id)?|secret(?:[_\s-]?(?:access[_\s-]?)?key)?"
    r"|client[_\s-]?secret|auth[_\s-]?token|access[_\s-]?token|refresh[_\s-]?token|bearer|token"
    r"|private[_\s-]?key|credentials?|signing[_\s-]?key|webhook[_\s-]?secret|key"
)
_ASSIGNED = re.compile(
    rf"(?<![A-Za-z0-9])(?:(?P<pw>{_PASSWORD_WORDS})|(?P<key>{_KEY_WORDS}))(?![A-Za-z0-9])"
    r"(?P<sep>[\"']?[ \t]*(?::=|=>|[:=](?!=)|\bis\b|\bwas\b|\bof\b)[ \t]*|[ \t]+)"
    r"(?P<quote>[\"'`]?)(?P<value>[^\s\"'`<>,;()\[\]{}]{6,})",
    re.I,
)
# Words that follow "password"/"token" in prose or docs without being one.
_PLACEHOLDERS = re.compile(
    r"^(?:x+|\*+|\.+|<.*>|your[_-]?\w*|my[_-]?\w*|changeme|example\w*|placeholder|redacted|none|null"
    r"|true|false|required|optional|here|hidden|secret|password|token|string|undefined)$",
    re.I,
)
# A dotted or snake_case name, or a call: a variable that holds the secret, not the secret.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _classes(value: str) -> int:
    """How many of lower case, upper case, digits and symbols the value mixes."""
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_secret(value: str, *, password: bool, quoted: bool) -> bool:
    """Whether a value assigned to a key/token/password word is plausibly the secret itself."""
    if _PLACEHOLDERS.match(value) or (_IDENTIFIER.match(value) and not quoted):
        return False
    if password:
        return len(value) >= 6 and (_classes(value) >= 2 or quoted)
    return len(value) >= 16 and _classes(value) >= 2 and _entropy(value) >= 3.0


class ApiKeyRecognizer(SpanRecognizer):
    KIND = "API_KEY"

    def spans(self, text: str, nlp_artifacts: NlpArtifacts | None) -> Iterator[Span]:
        for pattern in _PREFIXED:
            for m in pattern.finditer(text):
                yield m.start(), m.end(), 0.95
        for m in _URL_USERINFO.finditer(text):
            yield m.start("cred"), m.end("cred"), 0.9
        for m in _URL_PARAM.finditer(text):
            yield m.start("value"), m.end("value"), 0.85
        for m in _ASSIGNED.finditer(text):
            value = m.group("value").rstrip(".,:;")
            start = m.start("value")
            follows = text[start + len(value) : start + len(value) + 1]
            if follows in ("(", "["):  # a call or an index: code, not a literal
                continue
            if looks_secret(value, password=m.group("pw") is not None, quoted=bool(m.group("quote"))):
                yield start, start + len(value), 0.85
