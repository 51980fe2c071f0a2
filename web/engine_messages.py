"""The engine's sentences in the page's language. The engine (``scanner/``) and the jobs
(``ccbb/jobs.py``) write their messages for people in English, stored as they are (a scan's
failure reason, a connection test's answer, a failed page's error) and sent as they are by the
JSON API and the CLI; pages translate them when they show them.

Each message the engine can write is listed below as its English text, with ``%(name)s`` where
the engine puts a value: that text is both the catalogue's message and the pattern that
recognises it (the values are kept, and those named in NESTED are engine sentences too, translated
in turn). A message the list does not know is shown as the engine wrote it. The tests make the
engine write its messages and check that each one is recognised."""

from __future__ import annotations

import re
from dataclasses import dataclass

from affiliates import messages as affiliate_messages
from billing import messages as billing_messages
from ccbb import dispatch, schedule_rules
from notify import hooks
from web.i18n import N_, gettext

# placeholders holding another engine sentence (a network error, a product's error reason,
# why a scan's credit came back)
NESTED = frozenset({"error", "reason", "why"})

MESSAGES = (
    # scanner/amazon.py: credentials refused before or by Amazon (scan failures, Test connection)
    N_("these are old Product Advertising API 5.0 keys (AKIA…), which Amazon retired in 2026: "
       "create Creators API credentials in Associates Central (Tools > Creators API) and use "
       "their Credential ID and Credential Secret"),
    N_("no Amazon credentials: give the Credential ID and Credential Secret of your Creators API "
       "credentials (Associates Central > Tools > Creators API)"),
    N_("unknown credential version %(version)s: use the version shown next to the credential in "
       "Associates Central (2.1 North America, 2.2 Europe, 2.3 Far East, or 3.1/3.2/3.3)"),
    N_("no partner tag: give your Associates tracking ID (it looks like yourname-20)"),
    N_("the partner tag %(tag)s is not tied to these credentials on %(marketplace)s: use the "
       "tracking ID of the Associates account that created the credentials, and the country "
       "they were created for"),
    N_("your Associates account is not eligible for the Creators API yet (Amazon requires "
       "recent qualifying sales): once it is, the scan will work unchanged"),
    N_("Amazon denied access to the Creators API: %(details)s"),
    N_("Amazon refused the credentials: check the Credential ID, the Credential Secret and the "
       "version (%(version)s); if you have not registered for the Creators API yet, do so in "
       "Associates Central first"),
    N_("cannot reach Amazon's sign-in service: %(details)s; try again in a few minutes"),
    N_("Amazon rejected the request: %(details)s"),
    N_("Amazon API unavailable after %(attempts)s attempts: %(details)s"),
    N_("Amazon did not answer the test lookup: %(reason)s. Try again later."),
    N_("Connected: Amazon answered a product lookup on %(marketplace)s with the partner tag "
       "%(tag)s."),
    # scanner/urls.py: the site typed in for a scan
    N_("the site URL is empty: give a domain such as example.com"),
    N_("%(url)s is not a web address: use http:// or https://"),
    N_("%(url)s has no domain name: give one such as example.com"),
    N_("%(url)s has an invalid port"),
    # scanner/scan.py: a scan that could not read a page
    N_("%(site)s redirects to %(target)s, another site: scan that address instead"),
    N_("robots.txt of %(site)s forbids the AffiliateLink crawler: allow the user-agent "
       "AffiliateLink in robots.txt, then scan again"),
    # scanner/messages.py: why a site or a page could not be read
    N_("site unreachable: %(url)s: %(error)s. Check the address; if your host limits crawlers, "
       "ask it to allow the user-agent AffiliateLink"),
    N_("%(url)s is refused for safety: %(error)s. Scan the site's public address instead"),
    N_("refused to connect to %(host)s (%(addresses)s): private, loopback or reserved addresses "
       "are not crawled"),
    N_("%(https_url)s did not work (%(error)s): scanned %(http_url)s instead"),
    N_("skipped: %(reason)s"),
    N_("HTML nested deeper than %(count)s elements"),
    N_("reading its HTML took over %(seconds)s s"),
    N_("the site's https certificate is not valid (expired, or another name's)"),
    N_("the site does not answer over https"),
    N_("no such domain: check the spelling"),
    N_("timed out: the site did not answer in time"),
    N_("the server refused the connection (nothing listens)"),
    N_("the site closed the connection before answering"),
    N_("the site's address cannot be reached from here"),
    N_("the address is not a valid URL"),
    N_("the site sent a broken answer"),
    N_("internal error"),
    N_("no HTML page found at %(site)s: check the address"),
    # billing/clickbank_api.py: ClickBank's REST API refused or out of reach (Billing's
    # refund, cancel and change buttons)
    N_("ClickBank's API key is not set (CCBB_CLICKBANK_API_KEY)"),
    N_("ClickBank could not be reached; try again later"),
    N_("ClickBank refused the request (%(status)s): %(details)s"),
    # ccbb/jobs.py
    N_("the Amazon credentials of this scan were deleted"),
    N_("internal error: the scan stopped; try again, or contact support"),
)  # fmt: skip

# What plans, credits, the affiliate program, schedules and alert channels store or raise in
# English (ledger comments the Billing history shows, a refused scan's reason, a schedule's last
# outcome), with ``{name}`` for their values; each is marked with N_() where it is defined
# (babel.cfg lists those modules).
STORED = (
    billing_messages.NO_CREDITS,
    billing_messages.TOO_MANY_ACTIVE,
    billing_messages.INSUFFICIENT,
    billing_messages.UNKNOWN_SKU,
    billing_messages.SCAN_SPENT,
    billing_messages.SCAN_REFUND,
    billing_messages.REFUND_CANCELLED,
    billing_messages.REFUND_FAILED,
    billing_messages.SIGNUP_CREDITS,
    billing_messages.DEMO_CREDITS,
    billing_messages.ADMIN_GRANT,
    billing_messages.ADMIN_REVOKE,
    billing_messages.CONSUMED,
    affiliate_messages.SELF_SAME_ACCOUNT,
    affiliate_messages.SELF_SAME_EMAIL,
    affiliate_messages.SELF_SAME_BROWSER,
    # schedules: their checks (shared with the API) and the outcomes the dispatcher stores
    schedule_rules.BAD_FREQUENCY,
    schedule_rules.BAD_HOUR,
    schedule_rules.BAD_WEEKDAY,
    schedule_rules.BAD_DAY,
    schedule_rules.BAD_ZONE,
    dispatch.QUEUED,
    dispatch.STILL_SCANNING,
    dispatch.TOO_MANY,
    dispatch.NO_CREDITS,
    dispatch.NO_CREDENTIAL,
    # billing/clickbank_effects.py: the ledger comment of a ClickBank payment or reversal
    N_("ClickBank {what} {receipt}: {sku}"),
    # alert channels: what is wrong with a webhook address
    hooks.NOT_HTTP,
    hooks.NOT_SLACK,
    hooks.PRIVATE,
    hooks.UNKNOWN_HOST,
)

# the kinds of ClickBank payment a ledger comment names (line item types, a renewal, the
# reversals' transaction types), as pages say them
CLICKBANK_WHAT = {
    "original": N_("purchase"),
    "upsell": N_("upsell"),
    "bump": N_("order bump"),
    "cart": N_("cart purchase"),
    "renewal": N_("renewal"),
    "RFND": N_("refund"),
    "CGBK": N_("chargeback"),
    "INSF": N_("returned payment"),
}

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|\{(\w+)\}")


@dataclass(frozen=True)
class _Pattern:
    message: str
    regex: re.Pattern[str]


def _pattern(message: str) -> _Pattern:
    parts = []
    last = 0
    for m in _PLACEHOLDER.finditer(message):
        parts.append(re.escape(message[last : m.start()]))
        parts.append(f"(?P<{m.group(1) or m.group(2)}>.+?)")
        last = m.end()
    parts.append(re.escape(message[last:]))
    return _Pattern(message, re.compile("".join(parts), re.DOTALL))


PATTERNS = tuple(_pattern(m) for m in (*MESSAGES, *STORED))


def _match(text: str) -> tuple[str, dict[str, str]] | None:
    for p in PATTERNS:
        if m := p.regex.fullmatch(text):
            return p.message, m.groupdict()
    return None


def known(text: str) -> bool:
    """Is ``text`` one of the engine's messages (as written, or made a sentence: capital first
    letter, final full stop)?"""
    return _match(text) is not None or _match_sentence(text) is not None


def _match_sentence(text: str) -> tuple[str, dict[str, str]] | None:
    """The engine makes some of its messages sentences (Test connection): ``These are ….``
    for ``these are …``."""
    clause = text[:-1] if text.endswith(".") else text
    return _match(clause) or _match(clause[:1].lower() + clause[1:])


def translate(text: str | None) -> str:
    """``text`` in the current language when it is one of the engine's messages, else as it is."""
    if not text:
        return text or ""
    return _translate(text, depth=0)


def _translate(text: str, depth: int) -> str:
    found = _match(text)
    sentence = False
    if found is None:
        found = _match_sentence(text)
        sentence = found is not None
    if found is None:
        return text
    message, values = found
    values = {
        name: _translate(value, depth + 1) if name in NESTED and depth < 3 else value
        for name, value in values.items()
    }
    if "what" in values and values["what"] in CLICKBANK_WHAT:
        values["what"] = gettext(CLICKBANK_WHAT[values["what"]])
    if not values:
        out = gettext(message)
    elif "%(" in message:
        out = gettext(message) % values
    else:
        out = gettext(message).format(**values)
    if sentence:
        out = out[:1].upper() + out[1:] + ("" if out.endswith(".") else ".")
    return out
