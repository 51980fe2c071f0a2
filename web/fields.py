"""How long each field a user types may be (what the database keeps and the worker gets), and
how an over-long or odd value is refused: with a message that says the limit and never echoes
the value in full, and a form that comes back with the value cut to its limit.

Host names are checked here too (:func:`ascii_host`): IDN to punycode (IDNA 2008 with UTS #46
mapping, by the ``idna`` package), each label 1–63 characters, the whole at most 253."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import idna
from starlette.exceptions import HTTPException
from starlette.requests import Request

from web.i18n import N_, _, number

MAX_LENGTHS = {
    "domain": 2000,  # the site: a URL
    "site": 2000,
    "partner_tag": 64,
    "credential_id": 200,
    "secret": 512,
    "label": 200,
    "name": 100,  # an API token's name
    "email": 254,  # what RFC 5321 lets through a mail server
    "password": 1024,
    "current": 1024,
    "new": 1024,
    "cloak_prefix": 500,  # each line
    "tps": 16,
    "max_pages": 16,
}
SHOWN = 60  # characters of a refused value a message quotes

# the messages, in one place; translated into the page's language when made (web.i18n: the
# JSON API has none, it stays English)
TOO_LONG = N_("This is too long: use %(limit)s characters at most.")
BAD_HOST = N_("“%(host)s” is not a valid domain name: %(why)s.")
HOST_TOO_LONG = N_("The domain name is too long: 253 characters at most, 63 per label.")
WHY_LABEL = N_(
    "a part between dots is empty, too long (63 characters at most) or starts or ends with -"
)
WHY_CHARS = N_("use letters, digits and hyphens (international names are fine)")


def too_long_message(limit: int) -> str:
    """The message for a value over ``limit`` characters."""
    return _(TOO_LONG) % {"limit": number(limit)}


def _bad_host(host: str, why: str) -> BadHost:
    return BadHost(_(BAD_HOST) % {"host": shown(host), "why": _(why)})


def shown(value: str, limit: int = SHOWN) -> str:
    """``value`` as a message may quote it: at most ``limit`` characters."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def too_long(form: Mapping[str, str]) -> dict[str, str]:
    """A message for each field of ``form`` longer than its limit."""
    return {
        key: too_long_message(MAX_LENGTHS[key])
        for key, value in form.items()
        if key in MAX_LENGTHS and len(value) > MAX_LENGTHS[key]
    }


def clipped(form: Mapping[str, str]) -> dict[str, str]:
    """``form`` with every value cut to its limit (to show back in a page)."""
    out = {
        key: value[: MAX_LENGTHS[key]] if key in MAX_LENGTHS else value
        for key, value in form.items()
    }
    if "cloak_prefixes" in out:  # one prefix a line
        limit = MAX_LENGTHS["cloak_prefix"]
        out["cloak_prefixes"] = "\n".join(
            line[:limit] for line in out["cloak_prefixes"].split("\n")
        )
    return out


MAX_ID = 2**31 - 1  # row ids are 32-bit on both databases (a larger one is no row)


def path_id(request: Request, name: str) -> int:
    """The id in the URL (``{name:int}``), or 404 when no row can have it (the database
    would overflow on it)."""
    value = request.path_params[name]
    if not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise HTTPException(status_code=404, detail=_("Not Found"))
    return value


class BadHost(ValueError):
    pass


def ascii_host(host: str) -> str:
    """The host name as the network writes it (punycode, lower case), or BadHost saying why.
    IP literals are returned as they are (the crawler's guard judges the address)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return host
    if len(host) > 253 * 4:  # no use encoding more
        raise BadHost(_(HOST_TOO_LONG))
    try:
        encoded = idna.encode(host.rstrip("."), uts46=True).decode("ascii")
    except idna.InvalidCodepoint:
        raise _bad_host(host, WHY_CHARS) from None
    except (idna.IDNAError, UnicodeError) as exc:
        if "too long" in str(exc).lower():
            raise BadHost(_(HOST_TOO_LONG)) from None
        raise _bad_host(host, WHY_LABEL) from None
    labels = encoded.split(".")
    if len(encoded) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise BadHost(_(HOST_TOO_LONG))
    return encoded
