"""What the product's mails and alerts say, all in this one module, in the language of the
moment (``web.i18n``: a request's, or the recipient's account's, set with
``web.i18n.speaking(user.locale)`` by the job that writes the mail). Each function returns the
subject, the text part and the HTML part; links are absolute, made from ``CCBB_PUBLIC_URL``.
The webhook's JSON stays English (a stable contract): only what people read is translated."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from web.i18n import _, ngettext, number

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
    values = {"product": PRODUCT}
    welcome = _("Welcome to %(product)s!") % values
    ignore = _("If you did not sign up, ignore this mail: nothing happens without you.")
    return Parts(
        subject=_("Confirm your e-mail address for %(product)s") % values,
        text=(
            f"{welcome}\n\n"
            + _("Confirm your e-mail address to start scanning your sites:")
            + f"\n\n{link}\n\n{ignore}\n"
        ),
        html=_html(
            [
                escape(welcome),
                escape(_("Confirm your e-mail address to start scanning your sites.")),
                escape(ignore),
            ],
            (_("Confirm my address"), link),
        ),
    )


def password_reset(link: str) -> Parts:
    asked = _("Someone (you, we hope) asked to reset the password of this account.")
    ignore = _("If it was not you, ignore this mail: your password stays as it is.")
    return Parts(
        subject=_("Reset your %(product)s password") % {"product": PRODUCT},
        text=(
            f"{asked}\n\n"
            + _("Choose a new password here (the link works once, within one hour):")
            + f"\n\n{link}\n\n{ignore}\n"
        ),
        html=_html(
            [escape(asked), escape(_("The link works once, within one hour.")), escape(ignore)],
            (_("Choose a new password"), link),
        ),
    )


# ---- what changed between two scans, in words (alerts, summaries, the report page) --------


def change_line(kind: str, n: int) -> str:
    """One kind of change with its count: ``3 newly out of stock`` (``scanner.changes.LINE_TEXT``
    says it in English for the API and the webhook)."""
    values = {"n": number(n)}
    if kind == "newly_out_of_stock":
        return ngettext("%(n)s newly out of stock", "%(n)s newly out of stock", n) % values
    if kind == "newly_removed":
        return (
            ngettext("%(n)s newly removed from Amazon", "%(n)s newly removed from Amazon", n)
            % values
        )
    if kind == "newly_error":
        return ngettext("%(n)s newly in error", "%(n)s newly in error", n) % values
    if kind == "recovered":
        return ngettext("%(n)s recovered", "%(n)s recovered", n) % values
    if kind == "new_products":
        return (
            ngettext("%(n)s new product on the site", "%(n)s new products on the site", n) % values
        )
    if kind == "gone_products":
        return (
            ngettext(
                "%(n)s product no longer on the site", "%(n)s products no longer on the site", n
            )
            % values
        )
    if kind == "lost_tag":
        return (
            ngettext("%(n)s link lost your partner tag", "%(n)s links lost your partner tag", n)
            % values
        )
    if kind == "other_tag":
        return (
            ngettext(
                "%(n)s link now carries someone else's tag",
                "%(n)s links now carry someone else's tag",
                n,
            )
            % values
        )
    if kind == "newly_failed_pages":
        return ngettext("%(n)s page newly fails", "%(n)s pages newly fail", n) % values
    return f"{number(n)} {kind}"


def since_scan(previous_scan_id: int | None) -> str:
    if previous_scan_id:
        return _("Since scan #%(scan_id)s") % {"scan_id": previous_scan_id}
    return _("Since the last scan")


def headline(since: str, line_texts: list[str]) -> str:
    """``Since scan #41: 3 newly out of stock, 1 recovered.``"""
    if not line_texts:
        return _("%(since)s: nothing changed.") % {"since": since}
    return _("%(since)s: %(changes)s.") % {"since": since, "changes": ", ".join(line_texts)}


def open_report() -> str:
    return _("Open the report")


def nothing_changed() -> str:
    return _("nothing changed")


def week_title(sites: int) -> str:
    if not sites:
        return _("Your week: no scans")
    return ngettext("Your week: %(n)s site scanned", "Your week: %(n)s sites scanned", sites) % {
        "n": number(sites)
    }


# ---- alerts ---------------------------------------------------------------------------------


def alert(site: str, headline: str, lines: list[tuple[str, str]], report_link: str) -> Parts:
    """``lines``: (text, link) per kind of change ("3 newly out of stock", its filtered table)."""
    text_lines = "\n".join(
        _("- %(what)s: %(link)s") % {"what": t, "link": link} for t, link in lines
    )
    items = "".join(f'<li><a href="{escape(link)}">{escape(t)}</a></li>' for t, link in lines)
    whole = _("The whole report: %(link)s") % {"link": report_link}
    return Parts(
        subject=_("%(site)s: %(changes)s")
        % {"site": site, "changes": ", ".join(t for t, _link in lines[:3])},
        text=f"{headline}\n\n{text_lines}\n\n{whole}\n",
        html=_html([escape(headline), f"<ul>{items}</ul>"], (open_report(), report_link)),
    )


def weekly_summary(rows: list[tuple[str, str, str]], dashboard: str) -> Parts:
    """``rows``: (site, what changed this week, link to its latest report)."""
    subject = _("%(product)s: your week") % {"product": PRODUCT}
    to_dashboard = _("Dashboard")
    if not rows:
        text = _("Nothing changed on your sites this week.")
        return Parts(subject, text + "\n", _html([escape(text)], (to_dashboard, dashboard)))
    text_rows = "\n".join(
        _("- %(site)s: %(what)s (%(link)s)") % {"site": site, "what": what, "link": link}
        for site, what, link in rows
    )
    items = "".join(
        f'<li><a href="{escape(link)}">{escape(site)}</a>: {escape(what)}</li>'
        for site, what, link in rows
    )
    intro = _("What changed on your sites this week:")
    return Parts(
        subject=subject,
        text=f"{intro}\n\n{text_rows}\n\n" + _("Dashboard: %(link)s") % {"link": dashboard} + "\n",
        html=_html([escape(intro), f"<ul>{items}</ul>"], (to_dashboard, dashboard)),
    )


def schedule_paused(site: str, link: str) -> Parts:
    text = _(
        "The scheduled scans of %(site)s are paused: you have no scan credits left. "
        "Buy credits, then turn the schedule back on."
    ) % {"site": site}
    return Parts(
        _("%(product)s: scheduled scans of %(site)s paused") % {"product": PRODUCT, "site": site},
        f"{text}\n\n{link}\n",
        _html([escape(text)], (_("Schedules"), link)),
    )


def test_message(channel: str) -> Parts:
    """``channel``: the kind of channel (``email``, ``slack``, ``webhook``)."""
    where = {
        "email": _("alerts will reach this address"),
        "slack": _("alerts will reach this Slack channel"),
        "webhook": _("alerts will reach this webhook"),
    }.get(channel, _("alerts will reach this address"))
    text = _("This is a test from %(product)s: %(where)s.") % {"product": PRODUCT, "where": where}
    return Parts(
        _("%(product)s: test alert") % {"product": PRODUCT}, text + "\n", _html([escape(text)])
    )
