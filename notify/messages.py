"""What the product's mails and alerts say (plain English, all in this one module; i18n
comes later). Each function returns the subject, the text part and the HTML part; links are
absolute, made from ``CCBB_PUBLIC_URL``."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

PRODUCT = "ClickClickBankBank"


@dataclass(frozen=True, slots=True)
class Parts:
    subject: str
    text: str
    html: str


def _html(paragraphs: list[str], link: tuple[str, str] | None = None) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link[1])}">{escape(link[0])}</a></p>'
    return (
        '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.4">'
        f'{body}<p style="color: #666">— {PRODUCT}</p></body></html>'
    )


def confirmation(link: str) -> Parts:
    return Parts(
        subject=f"Confirm your e-mail address for {PRODUCT}",
        text=(
            f"Welcome to {PRODUCT}!\n\n"
            "Confirm your e-mail address to start scanning your sites:\n\n"
            f"{link}\n\n"
            "If you did not sign up, ignore this mail: nothing happens without you.\n"
        ),
        html=_html(
            [
                f"Welcome to {PRODUCT}!",
                "Confirm your e-mail address to start scanning your sites.",
                "If you did not sign up, ignore this mail: nothing happens without you.",
            ],
            ("Confirm my address", link),
        ),
    )


def password_reset(link: str) -> Parts:
    return Parts(
        subject=f"Reset your {PRODUCT} password",
        text=(
            "Someone (you, we hope) asked to reset the password of this account.\n\n"
            f"Choose a new password here (the link works once, within one hour):\n\n{link}\n\n"
            "If it was not you, ignore this mail: your password stays as it is.\n"
        ),
        html=_html(
            [
                "Someone (you, we hope) asked to reset the password of this account.",
                "The link works once, within one hour.",
                "If it was not you, ignore this mail: your password stays as it is.",
            ],
            ("Choose a new password", link),
        ),
    )


def alert(site: str, headline: str, lines: list[tuple[str, str]], report_link: str) -> Parts:
    """``lines``: (text, link) per kind of change ("3 newly out of stock", its filtered table)."""
    text_lines = "\n".join(f"- {t}: {link}" for t, link in lines)
    items = "".join(f'<li><a href="{escape(link)}">{escape(t)}</a></li>' for t, link in lines)
    return Parts(
        subject=f"{site}: {', '.join(t for t, _ in lines[:3])}",
        text=f"{headline}\n\n{text_lines}\n\nThe whole report: {report_link}\n",
        html=_html([escape(headline), f"<ul>{items}</ul>"], ("Open the report", report_link)),
    )


def weekly_summary(rows: list[tuple[str, str, str]], dashboard: str) -> Parts:
    """``rows``: (site, what changed this week, link to its latest report)."""
    if not rows:
        text = "Nothing changed on your sites this week."
        return Parts(f"{PRODUCT}: your week", text + "\n", _html([text], ("Dashboard", dashboard)))
    text_rows = "\n".join(f"- {site}: {what} ({link})" for site, what, link in rows)
    items = "".join(
        f'<li><a href="{escape(link)}">{escape(site)}</a>: {escape(what)}</li>'
        for site, what, link in rows
    )
    return Parts(
        subject=f"{PRODUCT}: your week",
        text=f"What changed on your sites this week:\n\n{text_rows}\n\nDashboard: {dashboard}\n",
        html=_html(
            ["What changed on your sites this week:", f"<ul>{items}</ul>"], ("Dashboard", dashboard)
        ),
    )


def schedule_paused(site: str, link: str) -> Parts:
    text = (
        f"The scheduled scans of {site} are paused: you have no scan credits left. "
        "Buy credits, then turn the schedule back on."
    )
    return Parts(
        f"{PRODUCT}: scheduled scans of {site} paused",
        f"{text}\n\n{link}\n",
        _html([escape(text)], ("Schedules", link)),
    )


def test_message(channel: str) -> Parts:
    text = f"This is a test from {PRODUCT}: alerts will reach this {channel}."
    return Parts(f"{PRODUCT}: test alert", text + "\n", _html([escape(text)]))
