"""The `read_mailbox` tool: e-mails of the workspace (.eml files, mbox files) as text for a model.

Each mail becomes a block of its headers, the links in its body with their hosts, the names of its
attachments (never opened) and its body; HTML-only bodies are reduced to their visible text.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field

from modelfarm.agents.tools.sandbox import ToolContext, inside, safe_path, truncate
from modelfarm.errors import ToolError

_MAX_BODY_CHARS = 2_000  # per mail
_URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)


class _HTMLText(HTMLParser):
    """The visible text of an HTML body, and the targets of its links."""

    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self._hidden = 0  # depth inside <script> / <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href.strip())
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def _content(part: EmailMessage) -> str:
    try:
        text = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return text if isinstance(text, str) else ""


def _mail_block(mail_id: str, msg: EmailMessage) -> str:
    plain, html = msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))
    found: list[str] = []
    body = ""
    if isinstance(plain, EmailMessage):
        body = _content(plain)
        found += _URL.findall(body)
    if isinstance(html, EmailMessage):
        parser = _HTMLText()
        parser.feed(_content(html))
        parser.close()
        found += [h for h in parser.hrefs if h.lower().startswith(("http://", "https://"))]
        if not isinstance(plain, EmailMessage):
            body = parser.text()
            found += _URL.findall(body)
    links = list(dict.fromkeys(url.rstrip(".,;:!?") for url in found))
    attachments = [
        part.get_filename() or f"(unnamed {part.get_content_type()})"
        for part in msg.walk()
        if not part.is_multipart() and (part.get_content_disposition() == "attachment" or part.get_filename())
    ]
    lines = [f"id: {mail_id}"]
    lines += [f"{field}: {_header(msg, field)}" for field in ("from", "to", "date", "subject")]
    if msg["reply-to"]:  # a Reply-To on another domain than From is a classic phishing sign
        lines.insert(2, f"reply-to: {_header(msg, 'reply-to')}")
    lines.append("links:" + ("" if links else " (none)"))
    lines += [f"  - {url} (host: {urlsplit(url).hostname or '?'})" for url in links]
    lines.append(f"attachments: {', '.join(attachments) if attachments else '(none)'}")
    lines.append("body:")
    lines += [f"  {line.rstrip()}" for line in truncate(body.strip(), _MAX_BODY_CHARS).splitlines() if line.strip()]
    return "\n".join(lines)


def _header(msg: EmailMessage, name: str) -> str:
    value = msg[name]
    return " ".join(str(value).split()) if value is not None else ""


def _sent(msg: EmailMessage) -> datetime | None:
    try:
        when = parsedate_to_datetime(str(msg["date"]))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)  # what policy.default builds
    return msg


def _is_mbox(path: Path) -> bool:
    return path.name == "mbox" or path.suffix.lower() == ".mbox"


def _messages(ctx: ToolContext, path: Path) -> Iterator[tuple[str, EmailMessage]]:
    """(id, message) for an .eml file, each message of an mbox file, or both kinds in a folder."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for file in files:
        if not file.is_file() or not inside(ctx, file):
            continue
        if _is_mbox(file):
            box = mailbox.mbox(file, create=False)
            try:
                for n, key in enumerate(box.keys(), start=1):
                    yield f"{file.name}#{n}", _parse(box.get_bytes(key))
            finally:
                box.close()
        elif file.suffix.lower() == ".eml":
            yield file.name, _parse(file.read_bytes())


def read_mailbox(ctx: ToolContext, folder: str = ".", limit: Annotated[int, Field(ge=1)] = 50) -> str:
    """Read the e-mails of a workspace folder of .eml files, or of an mbox file, oldest first.
    For each mail: its id, from, to, date, subject, the links in its body with their host,
    the names of its attachments (never opened) and its plain-text body (cut to 2,000 chars).

    The first paragraph is what the model reads. HTML-only mails are reduced to their text,
    and their link targets are listed; a folder's mbox files are read along with its .eml files.
    """
    path = safe_path(ctx, folder)
    if path.is_file() and not (_is_mbox(path) or path.suffix.lower() == ".eml"):
        raise ToolError(f"{folder!r} is neither a folder of .eml files nor an mbox file; name one of those")
    mails = sorted(_messages(ctx, path), key=lambda m: (_sent(m[1]) is None, _sent(m[1]) or datetime.min, m[0]))
    if not mails:
        return f"no mail in {folder!r}: it holds no .eml or mbox files"
    blocks = [_mail_block(mail_id, msg) for mail_id, msg in mails[:limit]]
    if len(mails) > limit:
        blocks.append(f"({limit} of {len(mails)} mails shown; raise `limit` for more)")
    return "\n\n".join(blocks)
