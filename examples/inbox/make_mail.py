"""Write the six sample mails of the inbox example into workspace/mail/.

The mails are today's inbox of a fictional buyer, Jordan Doe, on Monday 23 November 2026: a supplier
quote, a phishing attempt, a lunch invitation, an overdue invoice, an analyst note and a code review.
Prices in them differ from workspace/prices.csv on purpose, so the market-data checker has something to
find. Output is deterministic (fixed dates and Message-IDs), so rerunning the script changes no file.

    python examples/inbox/make_mail.py
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ME = "Jordan Doe <j.doe@example.com>"


@dataclass(frozen=True)
class Mail:
    """One sample mail, before it becomes an RFC 5322 message."""

    filename: str
    """Name of the .eml file: number and time received, nothing that gives the content away (``01-...`` gives
    the Message-ID ``<01@inbox.example>``)."""
    sender: str
    """The From header: display name and address."""
    to: str
    """The To header."""
    subject: str
    time: str
    """Time sent on 23 Nov 2026, "HH:MM" in UTC."""
    body: str
    """Plain-text body, ASCII only; dedented and stripped when written."""
    reply_to: str | None = None
    """A Reply-To header, set only where it differs from the sender (the phishing mail)."""


MAILS: tuple[Mail, ...] = (
    Mail(
        filename="01-0712.eml",
        sender="Acme Metals Sales <orders@acme-metals.example.com>",
        to=ME,
        subject="Quote for your December order: copper and aluminium",
        time="07:12",
        body="""
            Dear Jordan,

            Thank you for your enquiry. For delivery in December we can offer:

              Copper cathode:  25 tonnes at 9,850 USD per tonne
              Aluminium ingot: 10 tonnes at 2,310 USD per tonne

            Prices are ex works and valid until Wednesday, 25 November. Please
            confirm the order by Wednesday so we can reserve the material;
            after that date we will have to requote.

            Kind regards,
            Olive Quillfeather
            Sales, Acme Metals
        """,
    ),
    Mail(
        filename="02-0748.eml",
        sender="IT Service Desk <support@micros0ft-secure-login.com>",
        to=ME,
        subject="URGENT: Your Microsoft 365 account has been suspended",
        time="07:48",
        reply_to="harvest@mail-collector.ru",
        body="""
            Dear user,

            We detected unusual sign-in activity and your Microsoft 365 account
            has been SUSPENDED. All incoming mail is on hold.

            To restore access you must verify your password within 24 hours:

            http://micros0ft-secure-login.com/verify?user=j.doe

            If you do not verify in time, your mailbox and all files will be
            permanently deleted. Do not ignore this message.

            IT Service Desk
            Microsoft 365 Security Team
        """,
    ),
    Mail(
        filename="03-0830.eml",
        sender="Mara Testwell <mara.testwell@example.com>",
        to="Purchasing Team <purchasing@example.com>",
        subject="Team lunch on Friday",
        time="08:30",
        body="""
            Hi all,

            To celebrate closing the quarter, let's have lunch together this
            Friday, 27 November, at 12:30 at the Green Fork, two streets from the
            office. I've booked a table for eight. No need to reply unless you
            have a dietary requirement I should pass on; just come along.

            See you there,
            Mara
        """,
    ),
    Mail(
        filename="04-0905.eml",
        sender="Northwind Accounts <accounts@northwind.example.net>",
        to=ME,
        subject="Overdue: invoice INV-2211 (4,200 USD)",
        time="09:05",
        body="""
            Dear Jordan Doe,

            Our records show that invoice INV-2211 for 4,200 USD, for the
            packaging materials delivered in October, is now 10 days overdue.

            Please arrange payment to the account on the invoice, or reply to
            this mail if you believe the amount is wrong or has already been
            paid, so we can reconcile our records.

            Thank you,
            Basil Ledgerwood
            Accounts Receivable, Northwind
        """,
    ),
    Mail(
        filename="05-0940.eml",
        sender="Example Research <research@example.org>",
        to=ME,
        subject="Morning metals note, 23 November",
        time="09:40",
        body="""
            Good morning,

            A quiet start to the week in metals. Gold trades around 2,050 USD
            per ounce, holding last week's gains. Nickel is firm at 17,400 USD
            per tonne on supply worries. Copper is at 8,900 USD per tonne after
            Friday's dip, which may be a buying opportunity for December cover.

            We expect little movement before Thursday's data.

            Example Research desk
        """,
    ),
    Mail(
        filename="06-1025.eml",
        sender="Dev Lead <dev-lead@example.com>",
        to=ME,
        subject="Review needed: apply_discount in the order tool",
        time="10:25",
        body="""
            Hi Jordan,

            Could you review this function from the order tool? It should apply
            our 7% loyalty discount, but a 100 USD order comes out at 7 USD.

                def apply_discount(price: float) -> float:
                    \"\"\"Return the price after the 7% loyalty discount.\"\"\"
                    return price * 0.07

            Please send a fix, ideally with a small test, by tomorrow so it can
            go into Wednesday's release.

            Thanks,
            Casey Sampleton
            Development Lead
        """,
    ),
)


def build(mail: Mail) -> EmailMessage:
    """Turn one sample mail into a message with deterministic headers."""
    hour, minute = (int(part) for part in mail.time.split(":"))
    msg = EmailMessage()
    msg["From"] = mail.sender
    msg["To"] = mail.to
    if mail.reply_to is not None:
        msg["Reply-To"] = mail.reply_to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime(2026, 11, 23, hour, minute, tzinfo=UTC))
    msg["Message-ID"] = f"<{mail.filename[:2]}@inbox.example>"
    # us-ascii, not the default utf-8: the bodies are ASCII only, and encoding fails loudly if one is not.
    msg.set_content(textwrap.dedent(mail.body).strip() + "\n", charset="us-ascii")
    return msg


def write_all(out_dir: Path) -> list[Path]:
    """Write every sample mail as a .eml file into out_dir and return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for mail in MAILS:
        path = out_dir / mail.filename
        path.write_bytes(bytes(build(mail)))
        paths.append(path)
    return paths


def main() -> None:
    for path in write_all(Path(__file__).resolve().parent / "workspace" / "mail"):
        print(path)


if __name__ == "__main__":
    main()
