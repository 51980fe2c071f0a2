"""The language of a page, and the words and formats in it.

Pages are in English or French. The language of a request is, in this order: ``?lang=fr|en``
(which also remembers the choice: in a cookie, and on the account of a logged-in user), the
account's choice, the visitor's cookie, the browser's ``Accept-Language``, else English. The
JSON API, the CSV export and the CLI stay English (stable contracts): only pages translate.

Messages are Babel catalogues (``web/locale/<lang>/LC_MESSAGES/messages.po``, compiled to
``.mo`` by the install step); templates use Jinja2's i18n extension, Python code ``_()`` for
a message shown now and ``N_()`` for one defined at import time and translated when shown.
Numbers, dates and money are formatted for the language by Babel (``1 719``, ``1 déc. 2026``,
``19,00 $``)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import LazyProxy, NullTranslations, Translations
from jinja2 import Environment
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LOCALES = ("en", "fr")
DEFAULT = "en"
NAMES = {"en": "English", "fr": "Français"}  # each language in its own words, for the switch
COOKIE = "ccbb_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
# what money looks like: the amount as the language writes numbers, then the sign
# ("19.00 $" would be wrong in English, "19,00 $US" is Babel's French; we sell in USD only)
MONEY_FORMATS = {"en": "${amount}", "fr": "{amount} $"}

_current: ContextVar[str] = ContextVar("ccbb_locale", default=DEFAULT)


# ---- choosing the language (pure) ----------------------------------------------------------


def parse_accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, preferred first (``q=0`` dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and tag != "*" and q > 0:
            weighted.append((-q, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def known(code: str | None) -> str | None:
    """``code`` if it names one of our languages (``fr``, ``FR``, ``fr-CA`` → ``fr``)."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LOCALES else None


def choose(
    *,
    asked: str | None = None,
    account: str | None = None,
    cookie: str | None = None,
    accept_language: str | None = None,
) -> str:
    """The language of a page: asked for (``?lang=``), else the account's, else the cookie's,
    else the best of ``Accept-Language``, else English."""
    for code in (asked, account, cookie):
        if found := known(code):
            return found
    preferred = [p.replace("_", "-") for p in parse_accept_language(accept_language)]
    found = negotiate_locale(preferred, list(LOCALES), sep="-")
    if found is None:  # "fr-BE" where we have "fr": Babel matches exact tags and aliases only
        found = next((k for k in map(known, preferred) if k), None)
    return found or DEFAULT


# ---- catalogues ----------------------------------------------------------------------------


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of ``locale``. The install step compiles the ``.po`` files; if a
    ``.mo`` is missing or older than its ``.po`` (a catalogue edited since), it is compiled here,
    in memory, and a warning says to run ``pybabel compile``."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if not po.exists():
        return NullTranslations()
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as f:
            return Translations(f, domain=DOMAIN)
    log.warning("%s is missing or older than %s: compiling it in memory", mo, po.name)
    log.warning("run: pybabel compile -d web/locale -D messages")
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def current() -> str:
    """The language of the request being answered (English outside a request)."""
    return _current.get()


def use(locale: str) -> None:
    """Makes ``locale`` the language of what runs next in this context (a request, a test)."""
    _current.set(known(locale) or DEFAULT)


@contextmanager
def speaking(locale: str | None) -> Iterator[None]:
    """Runs the block in ``locale`` (a user's ``locale``; English when unset): for what a
    job writes to a person, such as a mail, outside any request."""
    token = _current.set(known(locale) or DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def of_request(scope: Scope) -> str:
    """The language of a request, also before :class:`LocaleMiddleware` chose it (the body
    limit and the CSRF check answer first): chosen, else ``?lang=``, the cookie, the browser's."""
    if scope.get("locale"):
        return str(scope["locale"])
    headers = Headers(raw=list(scope.get("headers") or []))
    query = parse_qs(bytes(scope.get("query_string") or b"").decode("latin-1"))
    return choose(
        asked=next(iter(query.get("lang", [])), None),
        account=getattr(scope.get("user"), "locale", None),
        cookie=cookie_parser(headers.get("cookie", "")).get(COOKIE),
        accept_language=headers.get("accept-language"),
    )


def gettext(message: str) -> str:
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue without translating it: for texts made at import
    time, translated with ``_()`` when shown."""
    return message


class Translated(Mapping[str, str]):
    """A table of messages marked with ``N_()``, each translated when it is looked up (in
    Python, ``words["title"]``, or in a template, ``text.title``)."""

    def __init__(self, messages: Mapping[str, str]) -> None:
        self._messages = dict(messages)

    def __getitem__(self, key: str) -> str:
        message = self._messages[key]
        return gettext(message) if message else message

    def __iter__(self) -> Iterator[str]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)


def in_language(locale: str, message: str) -> str:
    """``message`` translated into ``locale`` whatever the current language (for answers
    made before the language middleware has chosen one)."""
    return translations(known(locale) or DEFAULT).gettext(message)


def lazy_gettext(message: str) -> LazyProxy:
    """``message`` translated each time it is turned into text, in the language of that moment."""
    return LazyProxy(gettext, message, enable_cache=False)


# ---- formats -------------------------------------------------------------------------------


def number(value: float | int | Decimal | None) -> str:
    """``1719`` → ``1,719`` (en) / ``1 719`` (fr)."""
    if value is None:
        return "—"
    return format_decimal(value, locale=current())


def money(amount: Decimal | float | int | str) -> str:
    """A USD amount: ``$19.00`` (en) / ``19,00 $`` (fr). Decimal in, never float arithmetic."""
    text = format_decimal(Decimal(str(amount)), format="#,##0.00", locale=current())
    return MONEY_FORMATS[current()].format(amount=text)


def percent(value: float | int | Decimal, digits: int = 0) -> str:
    """``0.42`` → ``42%`` (en) / ``42 %`` (fr); ``digits`` after the decimal sign."""
    pattern = Locale.parse(current()).percent_formats[None].pattern  # "#,##0 %" in French
    if digits:
        pattern = pattern.replace("#,##0", "#,##0." + "0" * digits, 1)
    return format_percent(value, format=pattern, locale=current())


def share(label: str, count: int, total: int) -> str:
    """A chart's legend line in the language: ``Disponible : 100 (61,7 %)``."""
    part = percent(count / total if total > 0 else 0, 1)
    return gettext("%(label)s: %(count)s (%(percent)s)") % {
        "label": label,
        "count": number(count),
        "percent": part,
    }


def day(value: date | datetime | None) -> str:
    """``1 déc. 2026`` (fr) / ``Dec 1, 2026`` (en)."""
    if value is None:
        return "—"
    return format_date(value, format="medium", locale=current())


def moment(value: datetime | None) -> str:
    """A date and time in UTC: ``1 déc. 2026 14:05 UTC`` (fr), ``Dec 1, 2026 2:05 PM UTC``
    (en). A naive datetime is taken as UTC."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    locale = current()
    day_text = format_date(value.astimezone(UTC), format="medium", locale=locale)
    time_text = format_time(value, format="short", tzinfo=UTC, locale=locale)
    return f"{day_text} {time_text} UTC"


# ---- words the engine and the database keep in English, translated in pages --------------

STATUS_WORDS = {
    "available": N_("Available"),
    "removed": N_("Removed"),
    "out_of_stock": N_("Out of stock"),
    "error": N_("Error"),
    "not_checked": N_("Not checked"),
}
STATE_WORDS = {
    "queued": N_("queued"),
    "running": N_("running"),
    "done": N_("done"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
}


# the scan's phases the engine and the jobs write (scanner/, ccbb/jobs.py)
PHASE_WORDS = {
    "crawling": N_("crawling"),
    "resolving links": N_("resolving links"),
    "checking Amazon credentials": N_("checking Amazon credentials"),
    "checking products": N_("checking products"),
    "starting": N_("starting"),
    "cancelled": N_("cancelled"),
    "done": N_("done"),
    "failed": N_("failed"),
}


def status_word(status: str) -> str:
    """A product status as pages say it: ``removed`` → ``Supprimé`` in French."""
    word = STATUS_WORDS.get(status)
    return gettext(word) if word else status


def state_word(state: str) -> str:
    """A scan's state as pages say it (``running`` → ``en cours``)."""
    word = STATE_WORDS.get(state)
    return gettext(word) if word else state


def phase_word(phase: str) -> str:
    """A scan's phase as pages say it; one the engine added since is shown as it is."""
    word = PHASE_WORDS.get(phase)
    return gettext(word) if word else phase


def phase_words() -> dict[str, str]:
    """Every phase in the current language, for the dashboard's script."""
    return {phase: gettext(word) for phase, word in PHASE_WORDS.items()}


# ---- templates -----------------------------------------------------------------------------


def lang_url(request: Request, code: str) -> str:
    """This page's address in language ``code`` (the other query parameters kept)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    query.append(("lang", code))
    return f"{request.url.path}?{urlencode(query)}"


FILTERS: Mapping[str, Callable[..., str]] = {
    "number": number,
    "money": money,
    "percent_of": percent,
    "day": day,
    "moment": moment,
    "status_word": status_word,
    "state_word": state_word,
    "phase_word": phase_word,
}


def install(env: Environment) -> None:
    """Jinja2's i18n extension, translating in the language of the request being answered."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True  # babel.cfg extracts with trimmed = true too
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(FILTERS)
    env.globals.update({"current_locale": current, "phase_words": phase_words})


def template_context(request: Request) -> dict[str, Any]:
    """What every page needs to name and switch its language."""
    return {
        "locale": current(),
        "other_locales": [
            {"code": c, "name": NAMES[c], "url": lang_url(request, c)}
            for c in LOCALES
            if c != current()
        ],
        "locale_links": [
            {"code": c, "name": NAMES[c], "url": lang_url(request, c), "current": c == current()}
            for c in LOCALES
        ],
    }


# ---- the middleware ------------------------------------------------------------------------

SaveChoice = Callable[[Request, int, str], Any]


class LocaleMiddleware:
    """Chooses each page's language (after the AuthGate: it reads ``scope["user"]``) and puts
    it in ``scope["locale"]`` and in the context the templates and ``_()`` read. ``?lang=``
    sets a cookie (``Secure`` when ``secure``), and for a logged-in user calls
    ``save_choice(request, user_id, code)``.
    The JSON API is left alone: it speaks English."""

    def __init__(
        self, app: ASGIApp, save_choice: SaveChoice | None = None, secure: bool = False
    ) -> None:
        self.app = app
        self.save_choice = save_choice
        self.cookie_flags = "; Secure" if secure else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        user = scope.get("user")
        asked = known(request.query_params.get("lang"))
        locale = choose(
            asked=asked,
            account=getattr(user, "locale", None),
            cookie=request.cookies.get(COOKIE),
            accept_language=request.headers.get("accept-language"),
        )
        scope["locale"] = locale
        token = _current.set(locale)
        try:
            user_id = getattr(user, "id", None)
            changed = getattr(user, "locale", None) != asked
            if asked and user_id is not None and changed and self.save_choice is not None:
                await self.save_choice(request, user_id, asked)
            if asked is None or request.cookies.get(COOKIE) == asked:
                await self.app(scope, receive, send)
                return

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers.append(
                        "set-cookie",
                        f"{COOKIE}={asked}; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax"
                        + self.cookie_flags,
                    )
                await send(message)

            await self.app(scope, receive, send_with_cookie)
        finally:
            _current.reset(token)
