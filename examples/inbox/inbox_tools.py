"""A custom agent tool for the inbox example: phishing signs in each mail, found by rules.

Registered in farm.toml as `tools = ["inbox_tools.py:mail_risks"]` (a file next to farm.toml).
Small models are unreliable judges of phishing; what they are good at is reporting a clear
finding. So the signs are found here, deterministically, and the security agent's model
explains them: a sender domain imitating a brand (digits for letters), a Reply-To on another
domain, links to a host other than the sender's, a request for a password, and pressure
("urgent", "within 24 hours", "suspended").
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import urlsplit

from modelfarm.agents.tools import ToolContext, safe_path

BRANDS = ("microsoft", "paypal", "google", "apple", "amazon", "netflix", "office", "outlook", "bank")
LOOKALIKE = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s", "4": "a", "7": "t"})
PRESSURE = re.compile(r"\b(urgent|immediately|within 24 hours|suspended|permanently deleted|verify your)\b", re.I)
PASSWORD = re.compile(r"\b(password|passcode|log ?in details|credentials)\b", re.I)
URL = re.compile(r"https?://[^\s<>\"')]+")


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower()


def _imitates(domain: str) -> str | None:
    """The brand a domain imitates with digits for letters ("micros0ft" -> microsoft), if any."""
    plain = domain.translate(LOOKALIKE)
    for brand in BRANDS:
        if brand in plain and brand not in domain:
            return brand
    return None


def _signs(msg: EmailMessage) -> list[str]:
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = body_part.get_content() if isinstance(body_part, EmailMessage) else ""
    sender = _domain(str(msg["from"] or ""))
    signs = []
    brand = _imitates(sender)
    if brand:
        signs.append(f"sender domain {sender} imitates {brand}")
    reply = _domain(str(msg["reply-to"] or ""))
    if reply and reply != sender:
        signs.append(f"Reply-To goes to another domain ({reply})")
    for host in sorted({urlsplit(u).hostname or "" for u in URL.findall(body)}):
        if host and (_imitates(host) or not host.endswith(sender.split(".", 1)[-1])):
            signs.append(f"link to {host}")
    if PASSWORD.search(body):
        signs.append("asks for a password")
    pressure = sorted({m.group(0).lower() for m in PRESSURE.finditer(f"{msg['subject']} {body}")})
    if pressure:
        signs.append("pressure: " + ", ".join(pressure))
    return signs


def mail_risks(ctx: ToolContext, folder: str = "mail") -> str:
    """Check every .eml mail in `folder` for phishing signs; one line per mail: subject | PHISHING or OK | signs."""
    where = safe_path(ctx, folder)
    lines = []
    for path in sorted(where.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        signs = _signs(msg)
        verdict = "PHISHING" if len(signs) >= 2 else "OK"
        lines.append(f"{msg['subject']} | {verdict} | {'; '.join(signs) or 'no signs'}")
    return "\n".join(lines) or "no mail"
