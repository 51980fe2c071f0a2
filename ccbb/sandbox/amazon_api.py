"""A fake Amazon Creators API, for the tests and the demo.

It speaks what ``python-amazon-paapi`` 7.1 sends and expects (both its
synchronous client, built on the generated SDK, and its asynchronous one):

- ``POST /auth/o2/token``: the OAuth2 client-credentials grant, form-encoded
  with the scope ``creatorsapi/default`` for the 2.x versions (Cognito), JSON
  with the scope ``creatorsapi::default`` for the 3.x ones (Login with Amazon).
- ``POST /catalog/v1/getItems``: ``Authorization: Bearer <token>, Version 2.x``
  (only ``Bearer <token>`` for 3.x), ``x-marketplace``, and a camelCase body
  ``{"partnerTag", "itemIds", "resources"}``; it answers with the partial
  errors, the status codes and the error bodies (``type``, ``reason``,
  ``message``, ``fieldList``) that the library maps to its exceptions.
- ``/_sandbox/...``: what the tests need to break it (``faults``), to watch it
  (``requests``, ``token-requests``) and to start over (``reset``,
  ``expire-tokens``).

Which credentials exist and what every item answers is a :class:`Catalogue`,
read from a JSON file or built in code. Credential secrets are never logged,
printed, recorded nor shown in a ``repr``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Literal, cast

from aiohttp import web

from ccbb.sandbox.serving import serve_until_interrupted

__all__ = [
    "ALL_RESOURCES",
    "DEMO_CATALOGUE",
    "Catalogue",
    "CatalogueItem",
    "Credential",
    "Fault",
    "ItemError",
    "RunningSandbox",
    "SandboxState",
    "create_app",
    "load_demo_catalogue",
    "main",
    "running_sandbox",
]

TOKEN_PATH = "/auth/o2/token"  # noqa: S105 - a path, not a password
GET_ITEMS_PATH = "/catalog/v1/getItems"

DEMO_CATALOGUE = "demo_catalogue.json"

COGNITO_SCOPE = "creatorsapi/default"
LWA_SCOPE = "creatorsapi::default"
GRANT_TYPE = "client_credentials"
TOKEN_LIFETIME = 3600

MAX_ITEMS_PER_REQUEST = 10

# Seconds of network jitter forgiven by the rate limit: a request may come
# this much earlier than the token bucket allows.
RATE_TOLERANCE = 0.020

NotFoundMode = Literal["404", "200"]
NOT_FOUND_MODES: tuple[NotFoundMode, ...] = ("404", "200")

# The resources of GetItems, as GetItemsResource of the SDK lists them.
ALL_RESOURCES: frozenset[str] = frozenset(
    {
        "browseNodeInfo.browseNodes",
        "browseNodeInfo.browseNodes.ancestor",
        "browseNodeInfo.browseNodes.salesRank",
        "browseNodeInfo.websiteSalesRank",
        "customerReviews.count",
        "customerReviews.starRating",
        "images.primary.small",
        "images.primary.medium",
        "images.primary.large",
        "images.primary.highRes",
        "images.variants.small",
        "images.variants.medium",
        "images.variants.large",
        "images.variants.highRes",
        "itemInfo.byLineInfo",
        "itemInfo.contentInfo",
        "itemInfo.contentRating",
        "itemInfo.classifications",
        "itemInfo.externalIds",
        "itemInfo.features",
        "itemInfo.manufactureInfo",
        "itemInfo.productInfo",
        "itemInfo.technicalInfo",
        "itemInfo.title",
        "itemInfo.tradeInInfo",
        "parentASIN",
        "offersV2.listings.availability",
        "offersV2.listings.condition",
        "offersV2.listings.dealDetails",
        "offersV2.listings.isBuyBoxWinner",
        "offersV2.listings.loyaltyPoints",
        "offersV2.listings.merchantInfo",
        "offersV2.listings.price",
        "offersV2.listings.type",
    }
)

# Currency of the prices of a marketplace, when an item does not name one.
MARKETPLACE_CURRENCIES: dict[str, str] = {
    "www.amazon.com": "USD",
    "www.amazon.ca": "CAD",
    "www.amazon.com.mx": "MXN",
    "www.amazon.com.br": "BRL",
    "www.amazon.co.uk": "GBP",
    "www.amazon.de": "EUR",
    "www.amazon.fr": "EUR",
    "www.amazon.it": "EUR",
    "www.amazon.es": "EUR",
    "www.amazon.nl": "EUR",
    "www.amazon.com.be": "EUR",
    "www.amazon.ie": "EUR",
    "www.amazon.se": "SEK",
    "www.amazon.pl": "PLN",
    "www.amazon.com.tr": "TRY",
    "www.amazon.ae": "AED",
    "www.amazon.sa": "SAR",
    "www.amazon.eg": "EGP",
    "www.amazon.in": "INR",
    "www.amazon.co.jp": "JPY",
    "www.amazon.sg": "SGD",
    "www.amazon.com.au": "AUD",
}

DEFAULT_AVAILABILITY_MESSAGES: dict[str, str] = {
    "IN_STOCK": "In Stock",
    "IN_STOCK_SCARCE": "Only a few left in stock - order soon.",
    "OUT_OF_STOCK": "Currently unavailable.",
    "UNAVAILABLE": "Currently unavailable.",
    "PREORDER": "Available for pre-order.",
    "LEADTIME": "Usually ships within 2 to 3 weeks.",
    "AVAILABLE_DATE": "This item will be released soon.",
}


# --------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _str_list(value: Any, where: str) -> list[str]:
    _expect(
        isinstance(value, list) and all(isinstance(v, str) for v in value),
        f"{where} must be a list of strings",
    )
    return list(cast(list[str], value))


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    _expect(value is None or isinstance(value, str), f"{where}.{key} must be a string or null")
    return cast(str | None, value)


@dataclass(frozen=True)
class ItemError:
    """A per-item error: what ``errors`` holds for the ASIN.

    ``message`` should name the ASIN, as Amazon's messages do: clients map the
    errors back to their ASINs that way.
    """

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class CatalogueItem:
    """What Amazon knows of one ASIN on one marketplace.

    ``availability`` is the ``offersV2.listings[0].availability.type``
    (``IN_STOCK``, ``OUT_OF_STOCK``, ``UNKNOWN``...), or None for an item
    without any offer listing. An item with an ``error`` is not returned: the
    error is, in ``errors``.
    """

    title: str | None = None
    availability: str | None = None
    message: str | None = None
    price: float | None = None
    currency: str | None = None
    error: ItemError | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "item") -> CatalogueItem:
        _expect(isinstance(data, Mapping), f"{where} must be an object")
        unknown = set(data) - {"title", "availability", "message", "price", "currency", "error"}
        _expect(not unknown, f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        price = data.get("price")
        _expect(
            price is None or (isinstance(price, int | float) and not isinstance(price, bool)),
            f"{where}.price must be a number or null",
        )
        error: ItemError | None = None
        raw_error = data.get("error")
        if raw_error is not None:
            _expect(
                isinstance(raw_error, Mapping)
                and isinstance(raw_error.get("code"), str)
                and isinstance(raw_error.get("message"), str),
                f"{where}.error must be an object with a string code and message",
            )
            error = ItemError(code=raw_error["code"], message=raw_error["message"])
        return cls(
            title=_optional_str(data, "title", where),
            availability=_optional_str(data, "availability", where),
            message=_optional_str(data, "message", where),
            price=None if price is None else float(price),
            currency=_optional_str(data, "currency", where),
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.title is not None:
            data["title"] = self.title
        data["availability"] = self.availability
        if self.message is not None:
            data["message"] = self.message
        if self.price is not None:
            data["price"] = self.price
        if self.currency is not None:
            data["currency"] = self.currency
        if self.error is not None:
            data["error"] = self.error.to_dict()
            if self.availability is None:
                del data["availability"]
        return data


@dataclass
class Credential:
    """One set of Creators API credentials and what Amazon allows it.

    ``tps`` is the rate limit of the credential in requests per second; zero
    or less disables it. ``eligible`` False answers every lookup with 403
    ``AssociateNotEligible`` (an associate without enough sales).
    """

    credential_id: str
    credential_secret: str = field(repr=False)
    version: str = "2.1"
    partner_tags: list[str] = field(default_factory=list)
    marketplaces: list[str] = field(default_factory=lambda: ["www.amazon.com"])
    tps: float = 1.0
    eligible: bool = True

    def __post_init__(self) -> None:
        _expect(bool(self.credential_id), "credential_id must not be empty")
        _expect(
            self.family in ("2", "3"),
            f"credential {self.credential_id}: version {self.version!r} is neither 2.x nor 3.x",
        )

    @property
    def family(self) -> str:
        """``"2"`` (Cognito) or ``"3"`` (Login with Amazon)."""
        return self.version.partition(".")[0]

    @property
    def is_lwa(self) -> bool:
        return self.family == "3"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "credential") -> Credential:
        _expect(isinstance(data, Mapping), f"{where} must be an object")
        known = {
            "credential_id",
            "credential_secret",
            "version",
            "partner_tags",
            "marketplaces",
            "tps",
            "eligible",
        }
        unknown = set(data) - known
        _expect(not unknown, f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        for key in ("credential_id", "credential_secret"):
            _expect(isinstance(data.get(key), str), f"{where}.{key} must be a string")
        version = data.get("version", "2.1")
        _expect(isinstance(version, str), f"{where}.version must be a string such as '2.1'")
        tps = data.get("tps", 1.0)
        _expect(
            isinstance(tps, int | float) and not isinstance(tps, bool),
            f"{where}.tps must be a number",
        )
        eligible = data.get("eligible", True)
        _expect(isinstance(eligible, bool), f"{where}.eligible must be true or false")
        return cls(
            credential_id=data["credential_id"],
            credential_secret=data["credential_secret"],
            version=version,
            partner_tags=_str_list(data.get("partner_tags", []), f"{where}.partner_tags"),
            marketplaces=_str_list(
                data.get("marketplaces", ["www.amazon.com"]), f"{where}.marketplaces"
            ),
            tps=float(tps),
            eligible=eligible,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "credential_id": self.credential_id,
            "credential_secret": self.credential_secret,
            "version": self.version,
            "partner_tags": list(self.partner_tags),
            "marketplaces": list(self.marketplaces),
            "tps": self.tps,
            "eligible": self.eligible,
        }


@dataclass
class Catalogue:
    """Everything the sandbox knows: credentials and items per marketplace.

    ``items`` maps a marketplace host (``www.amazon.com``) to ASIN to item.
    An ASIN absent from its marketplace answers the per-item error
    ``InvalidParameterValue``. ``not_found_mode`` says how a request in which
    no item at all is found answers: ``"404"`` (ResourceNotFoundException) or
    ``"200"`` (only ``errors``) — Amazon does both.
    """

    credentials: list[Credential] = field(default_factory=list)
    items: dict[str, dict[str, CatalogueItem]] = field(default_factory=dict)
    not_found_mode: NotFoundMode = "404"

    def __post_init__(self) -> None:
        _expect(
            self.not_found_mode in NOT_FOUND_MODES,
            f"not_found_mode must be one of {', '.join(NOT_FOUND_MODES)}",
        )
        ids = [c.credential_id for c in self.credentials]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        _expect(not duplicates, f"duplicate credential ids: {', '.join(duplicates)}")

    def credential(self, credential_id: str) -> Credential | None:
        for credential in self.credentials:
            if credential.credential_id == credential_id:
                return credential
        return None

    def lookup(self, marketplace: str, asin: str) -> CatalogueItem | None:
        return self.items.get(marketplace, {}).get(asin.upper())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalogue:
        _expect(isinstance(data, Mapping), "the catalogue must be a JSON object")
        unknown = set(data) - {"credentials", "items", "not_found_mode"}
        _expect(not unknown, f"the catalogue has unknown fields: {', '.join(sorted(unknown))}")
        raw_credentials = data.get("credentials", [])
        _expect(isinstance(raw_credentials, list), "credentials must be a list")
        credentials = [
            Credential.from_dict(c, f"credentials[{n}]") for n, c in enumerate(raw_credentials)
        ]
        raw_items = data.get("items", {})
        _expect(isinstance(raw_items, Mapping), "items must be an object keyed by marketplace")
        items: dict[str, dict[str, CatalogueItem]] = {}
        for marketplace, asins in raw_items.items():
            _expect(isinstance(asins, Mapping), f"items[{marketplace!r}] must be an object by ASIN")
            items[marketplace] = {
                asin.upper(): CatalogueItem.from_dict(item, f"items[{marketplace!r}][{asin!r}]")
                for asin, item in asins.items()
            }
        mode = str(data.get("not_found_mode", "404"))
        _expect(
            mode in NOT_FOUND_MODES, f"not_found_mode must be one of {', '.join(NOT_FOUND_MODES)}"
        )
        return cls(credentials=credentials, items=items, not_found_mode=cast(NotFoundMode, mode))

    @classmethod
    def from_file(cls, path: str | Path) -> Catalogue:
        with Path(path).open(encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def to_dict(self) -> dict[str, Any]:
        return {
            "credentials": [c.to_dict() for c in self.credentials],
            "not_found_mode": self.not_found_mode,
            "items": {
                marketplace: {asin: item.to_dict() for asin, item in asins.items()}
                for marketplace, asins in self.items.items()
            },
        }


def load_demo_catalogue() -> Catalogue:
    """The catalogue bundled with the package (``demo_catalogue.json``)."""
    text = importlib_resources.files(__package__).joinpath(DEMO_CATALOGUE).read_text("utf-8")
    return Catalogue.from_dict(json.loads(text))


# --------------------------------------------------------------------------
# The state of a running sandbox
# --------------------------------------------------------------------------


@dataclass
class Fault:
    """Answer ``status`` to the next ``remaining`` getItems requests."""

    status: int
    remaining: int = 1
    retry_after: float | None = None


@dataclass
class _Token:
    credential_id: str
    expires_at: float


@dataclass
class _TokenBucket:
    """Refills at ``rate`` per second up to one request, forgiving ``tolerance`` s."""

    rate: float
    tolerance: float = RATE_TOLERANCE
    level: float = 1.0
    updated: float | None = None

    def try_acquire(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        if self.updated is not None:
            self.level = min(1.0, self.level + (now - self.updated) * self.rate)
        self.updated = now
        # A request a little early (jitter) is let through; it borrows from the
        # next one, so the long-run rate stays at most ``rate``.
        if self.level >= 1.0 - self.tolerance * self.rate - 1e-9:
            self.level -= 1.0
            return True
        return False


class SandboxState:
    """Tokens, rate limits, faults and the record of one sandbox app."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.tokens: dict[str, _Token] = {}
        self.buckets: dict[str, _TokenBucket] = {}
        self.faults: list[Fault] = []
        self.records: list[dict[str, Any]] = []
        self.token_records: list[dict[str, Any]] = []

    def inject_fault(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {status}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        self.faults.append(Fault(status=status, remaining=count, retry_after=retry_after))

    def take_fault(self) -> Fault | None:
        while self.faults and self.faults[0].remaining <= 0:
            self.faults.pop(0)
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.remaining -= 1
        return fault

    def reset(self) -> None:
        """Forget faults and records (tokens and rate limits stay)."""
        self.faults.clear()
        self.records.clear()
        self.token_records.clear()

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.expires_at = 0.0

    def issue_token(self, credential: Credential) -> str:
        value = secrets.token_urlsafe(32)
        self.tokens[value] = _Token(credential.credential_id, time.monotonic() + TOKEN_LIFETIME)
        return value

    def bucket(self, credential: Credential) -> _TokenBucket:
        bucket = self.buckets.get(credential.credential_id)
        if bucket is None:
            bucket = self.buckets[credential.credential_id] = _TokenBucket(rate=credential.tps)
        return bucket


STATE_KEY: web.AppKey[SandboxState] = web.AppKey("ccbb_sandbox_amazon_state", SandboxState)


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _validation_error(
    reason: str, message: str, fields: list[tuple[str, str]] | None = None
) -> web.Response:
    body: dict[str, Any] = {"type": "ValidationException", "reason": reason, "message": message}
    if fields:
        body["fieldList"] = [{"name": name, "message": msg} for name, msg in fields]
    return _json(400, body)


def _unauthorized(reason: str, message: str) -> web.Response:
    return _json(401, {"type": "UnauthorizedException", "reason": reason, "message": message})


def _throttled(message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(429, {"type": "ThrottleException", "message": message}, headers)


def _fault_response(fault: Fault) -> web.Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    status = fault.status
    if status == 429:
        return _throttled("Rate exceeded (injected by the sandbox).", headers)
    body: dict[str, Any]
    if status == 400:
        body = {"type": "ValidationException", "reason": "Other", "message": "Injected fault."}
    elif status == 401:
        body = {"type": "UnauthorizedException", "reason": "Other", "message": "Injected fault."}
    elif status == 403:
        body = {"type": "AccessDeniedException", "reason": "Other", "message": "Injected fault."}
    elif status == 404:
        body = {
            "type": "ResourceNotFoundException",
            "reason": "ItemNotFound",
            "message": "Injected fault.",
            "resourceId": "",
            "resourceType": "Item",
        }
    elif status >= 500:
        body = {"type": "InternalServerException", "message": "Injected fault."}
    else:
        body = {"message": "Injected fault."}
    return _json(status, body, headers)


def _money(amount: float, currency: str) -> dict[str, Any]:
    if currency == "EUR":
        display = f"{amount:,.2f}".replace(",", " ").replace(".", ",") + " €"
    elif currency == "JPY":
        display = f"¥{amount:,.0f}"
    else:
        symbols = {"USD": "$", "CAD": "$", "AUD": "$", "MXN": "$", "GBP": "£", "INR": "₹"}
        prefix = symbols.get(currency, f"{currency} ")
        display = f"{prefix}{amount:,.2f}"
    return {"amount": amount, "currency": currency, "displayAmount": display}


def _item_payload(
    asin: str, item: CatalogueItem, marketplace: str, tag: str, wanted: set[str]
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "asin": asin,
        "detailPageURL": f"https://{marketplace}/dp/{asin}?tag={tag}&linkCode=ogi&th=1&psc=1",
    }
    if "itemInfo.title" in wanted and item.title is not None:
        payload["itemInfo"] = {
            "title": {"displayValue": item.title, "label": "Title", "locale": "en_US"}
        }
    if item.availability is not None and any(r.startswith("offersV2.") for r in wanted):
        listing: dict[str, Any] = {}
        if "offersV2.listings.availability" in wanted:
            message = item.message or DEFAULT_AVAILABILITY_MESSAGES.get(item.availability)
            availability: dict[str, Any] = {"type": item.availability}
            if message is not None:
                availability["message"] = message
            listing["availability"] = availability
        if "offersV2.listings.condition" in wanted:
            listing["condition"] = {"value": "New"}
        if "offersV2.listings.isBuyBoxWinner" in wanted:
            listing["isBuyBoxWinner"] = True
        if "offersV2.listings.merchantInfo" in wanted:
            listing["merchantInfo"] = {"name": "Amazon", "id": "ATVPDKIKX0DER"}
        if "offersV2.listings.price" in wanted and item.price is not None:
            currency = item.currency or MARKETPLACE_CURRENCIES.get(marketplace, "USD")
            listing["price"] = {"money": _money(item.price, currency)}
        if listing:
            payload["offersV2"] = {"listings": [listing]}
    return payload


def _invalid_item(asin: str) -> dict[str, str]:
    return {
        "code": "InvalidParameterValue",
        "message": f"The ItemId {asin} provided in the request is invalid.",
    }


# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


def _token_error(
    state: SandboxState, client_id: str | None, status: int, error: str, why: str
) -> web.Response:
    state.token_records.append(
        {"t": time.monotonic(), "credential_id": client_id, "status": status, "error": error}
    )
    return _json(status, {"error": error, "error_description": why})


async def handle_token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    content_type = request.content_type
    data: Mapping[str, Any]
    if content_type == "application/x-www-form-urlencoded":
        lwa = False
        data = await request.post()
    elif content_type == "application/json":
        lwa = True
        try:
            parsed = await request.json()
        except ValueError:
            return _token_error(state, None, 400, "invalid_request", "The body is not JSON.")
        if not isinstance(parsed, dict):
            return _token_error(state, None, 400, "invalid_request", "The body is not an object.")
        data = parsed
    else:
        return _token_error(
            state, None, 400, "invalid_request", f"Unsupported content type {content_type!r}."
        )

    client_id = data.get("client_id")
    client_id = client_id if isinstance(client_id, str) else None
    if data.get("grant_type") != GRANT_TYPE:
        return _token_error(
            state, client_id, 400, "unsupported_grant_type", f"grant_type must be {GRANT_TYPE}."
        )
    expected_scope = LWA_SCOPE if lwa else COGNITO_SCOPE
    if data.get("scope") != expected_scope:
        flavour = "JSON (3.x)" if lwa else "form-encoded (2.x)"
        return _token_error(
            state,
            client_id,
            400,
            "invalid_scope",
            f"A {flavour} token request asks for the scope {expected_scope}.",
        )
    secret = data.get("client_secret")
    credential = state.catalogue.credential(client_id) if client_id else None
    if (
        credential is None
        or not isinstance(secret, str)
        or not hmac.compare_digest(secret.encode(), credential.credential_secret.encode())
    ):
        return _token_error(
            state, client_id, 401, "invalid_client", "Client authentication failed."
        )
    if credential.is_lwa != lwa:
        # Cognito (2.x) and Login with Amazon (3.x) are different servers:
        # neither knows the clients of the other.
        return _token_error(
            state,
            client_id,
            401,
            "invalid_client",
            f"Credentials of version {credential.version} cannot use this token flow.",
        )
    token = state.issue_token(credential)
    state.token_records.append(
        {"t": time.monotonic(), "credential_id": client_id, "status": 200, "error": None}
    )
    return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME})


def _parse_authorization(header: str) -> tuple[str | None, str | None]:
    """``Bearer <tok>[, Version <v>]`` -> (token, version)."""
    first, _, rest = header.partition(",")
    scheme, _, token = first.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, None
    version: str | None = None
    rest = rest.strip()
    if rest:
        name, _, value = rest.partition(" ")
        version = value.strip() if name == "Version" else rest
    return token.strip(), version


async def handle_get_items(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    now = time.monotonic()
    marketplace = request.headers.get("x-marketplace")
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    raw_ids = body.get("itemIds") if isinstance(body, dict) else None
    item_ids: list[Any] = list(raw_ids) if isinstance(raw_ids, list) else []

    token_value, header_version = _parse_authorization(request.headers.get("Authorization", ""))
    token = state.tokens.get(token_value) if token_value else None
    credential = state.catalogue.credential(token.credential_id) if token else None

    record: dict[str, Any] = {
        "t": now,
        "credential_id": credential.credential_id if credential else None,
        "marketplace": marketplace,
        "item_ids": item_ids,
        "status": 0,
    }
    state.records.append(record)
    response = _answer_get_items(
        state, now, credential, token, header_version, marketplace, body, item_ids
    )
    record["status"] = response.status
    return response


def _answer_get_items(
    state: SandboxState,
    now: float,
    credential: Credential | None,
    token: _Token | None,
    header_version: str | None,
    marketplace: str | None,
    body: Any,
    item_ids: list[Any],
) -> web.Response:
    fault = state.take_fault()
    if fault is not None:
        return _fault_response(fault)

    if token is None or credential is None:
        return _unauthorized("InvalidToken", "Unauthorized")
    if token.expires_at <= now:
        return _unauthorized("TokenExpired", "The access token has expired.")
    if credential.is_lwa:
        if header_version is not None:
            return _unauthorized(
                "InvalidToken",
                "Version 3.x tokens are sent as 'Bearer <token>' without a Version.",
            )
    elif header_version != credential.version:
        return _unauthorized(
            "InvalidToken",
            f"The Authorization header must end with ', Version {credential.version}' "
            f"for these credentials (got {header_version!r}).",
        )

    if not state.bucket(credential).try_acquire(now):
        return _throttled(
            f"Rate exceeded: these credentials are allowed {credential.tps:g} "
            "request(s) per second."
        )

    if not isinstance(body, dict):
        return _validation_error("CannotParse", "The request body is not a JSON object.")

    if not marketplace:
        return _validation_error(
            "FieldValidationFailed",
            "1 validation error detected.",
            [("x-marketplace", "The x-marketplace header is required.")],
        )
    if marketplace not in credential.marketplaces:
        return _validation_error(
            "InvalidAssociate",
            f"The credentials are not valid for the marketplace {marketplace}: your associate "
            f"account is not registered for it.",
        )

    tag = body.get("partnerTag")
    if not isinstance(tag, str) or not tag.strip():
        return _validation_error(
            "FieldValidationFailed",
            "1 validation error detected.",
            [("partnerTag", "Member must not be null.")],
        )
    if tag not in credential.partner_tags:
        return _validation_error(
            "InvalidPartnerTag",
            f"The partner tag {tag} is not mapped to a valid associate store with your access key.",
        )

    if not credential.eligible:
        return _json(
            403,
            {
                "type": "AccessDeniedException",
                "reason": "AssociateNotEligible",
                "message": "Your account does not currently meet the eligibility requirements "
                "of the Creators API: it has made fewer than 10 sales in the last 30 days.",
            },
        )

    raw_ids = body.get("itemIds")
    if (
        not isinstance(raw_ids, list)
        or not raw_ids
        or len(raw_ids) > MAX_ITEMS_PER_REQUEST
        or not all(isinstance(i, str) for i in raw_ids)
    ):
        count = len(raw_ids) if isinstance(raw_ids, list) else 0
        return _validation_error(
            "FieldValidationFailed",
            "1 validation error detected.",
            [
                (
                    "itemIds",
                    f"Member must be a list of 1 to {MAX_ITEMS_PER_REQUEST} item ids "
                    f"(got {count}).",
                )
            ],
        )

    raw_resources = body.get("resources", [])
    if not isinstance(raw_resources, list) or not all(isinstance(r, str) for r in raw_resources):
        return _validation_error(
            "FieldValidationFailed",
            "1 validation error detected.",
            [("resources", "Member must be a list of strings.")],
        )
    unknown = [r for r in raw_resources if r not in ALL_RESOURCES]
    if unknown:
        return _validation_error(
            "FieldValidationFailed",
            "1 validation error detected.",
            [("resources", f"Unknown resources: {', '.join(unknown)}.")],
        )
    wanted = set(raw_resources)

    items: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for asin in dict.fromkeys(i.strip().upper() for i in cast(list[str], item_ids)):
        item = state.catalogue.lookup(marketplace, asin)
        if item is None:
            errors.append(_invalid_item(asin))
        elif item.error is not None:
            errors.append(item.error.to_dict())
        else:
            items.append(_item_payload(asin, item, marketplace, tag, wanted))

    if not items and state.catalogue.not_found_mode == "404":
        asins = ", ".join(str(i) for i in item_ids)
        return _json(
            404,
            {
                "type": "ResourceNotFoundException",
                "reason": "ItemNotFound",
                "message": f"No item was found for the ItemIds {asins}.",
                "resourceId": asins,
                "resourceType": "Item",
            },
        )
    answer: dict[str, Any] = {}
    if items:
        answer["itemsResult"] = {"items": items}
    if errors:
        answer["errors"] = errors
    return _json(200, answer)


async def handle_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _json(400, {"error": "expected a JSON object {status, count, retry_after}"})
    status = data.get("status")
    count = data.get("count", 1)
    retry_after = data.get("retry_after")
    if (
        not isinstance(status, int)
        or not isinstance(count, int)
        or not (retry_after is None or isinstance(retry_after, int | float))
    ):
        return _json(400, {"error": "status and count are integers, retry_after a number"})
    try:
        state.inject_fault(status, count, None if retry_after is None else float(retry_after))
    except ValueError as error:
        return _json(400, {"error": str(error)})
    return _json(200, {"faults": [vars(f) for f in state.faults if f.remaining > 0]})


async def handle_requests(request: web.Request) -> web.Response:
    return _json(200, request.app[STATE_KEY].records)


async def handle_token_requests(request: web.Request) -> web.Response:
    return _json(200, request.app[STATE_KEY].token_records)


async def handle_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return _json(200, {"ok": True})


async def handle_expire_tokens(request: web.Request) -> web.Response:
    request.app[STATE_KEY].expire_tokens()
    return _json(200, {"ok": True})


def create_app(catalogue: Catalogue) -> web.Application:
    """The aiohttp application of a sandbox serving ``catalogue``."""
    app = web.Application()
    app[STATE_KEY] = SandboxState(catalogue)
    app.router.add_post(TOKEN_PATH, handle_token)
    app.router.add_post(GET_ITEMS_PATH, handle_get_items)
    app.router.add_post("/_sandbox/faults", handle_faults)
    app.router.add_get("/_sandbox/requests", handle_requests)
    app.router.add_get("/_sandbox/token-requests", handle_token_requests)
    app.router.add_post("/_sandbox/reset", handle_reset)
    app.router.add_post("/_sandbox/expire-tokens", handle_expire_tokens)
    return app


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


@dataclass
class RunningSandbox:
    """A sandbox listening at ``url``; its methods act in-process."""

    url: str
    state: SandboxState

    @property
    def auth_endpoint(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    @property
    def catalogue(self) -> Catalogue:
        return self.state.catalogue

    def requests(self) -> list[dict[str, Any]]:
        """The getItems requests so far: ``t``, ``credential_id``, ``marketplace``,
        ``item_ids``, ``status``."""
        return [dict(r) for r in self.state.records]

    def token_requests(self) -> list[dict[str, Any]]:
        """The token requests so far: ``t``, ``credential_id``, ``status``, ``error``."""
        return [dict(r) for r in self.state.token_records]

    def inject_fault(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer ``status`` to the next ``count`` getItems requests."""
        self.state.inject_fault(status, count, retry_after)

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401 TokenExpired."""
        self.state.expire_tokens()

    def reset(self) -> None:
        """Clear the faults and the records."""
        self.state.reset()


@asynccontextmanager
async def running_sandbox(
    catalogue: Catalogue, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve ``catalogue`` on ``host:port`` (0: any free port) while inside."""
    app = create_app(catalogue)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        yield RunningSandbox(url=f"http://{url_host}:{bound_port}", state=app[STATE_KEY])
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """``ccbb sandbox-amazon``: serve a catalogue until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="ccbb sandbox-amazon",
        description="Serve a fake Amazon Creators API (token endpoint and getItems).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue JSON file (default: the bundled demo catalogue)",
    )
    args = parser.parse_args(argv)
    try:
        catalogue = Catalogue.from_file(args.catalogue) if args.catalogue else load_demo_catalogue()
    except (OSError, ValueError) as error:
        print(f"ccbb sandbox-amazon: cannot load the catalogue: {error}", file=sys.stderr)
        return 2

    def banner(sandbox: RunningSandbox) -> str:
        ids = ", ".join(
            f"{c.credential_id} (version {c.version}, tags {', '.join(c.partner_tags)})"
            for c in catalogue.credentials
        )
        return (
            f"Amazon Creators API sandbox at {sandbox.url} "
            f"(auth endpoint {sandbox.auth_endpoint}); credentials: {ids or 'none'}"
        )

    return serve_until_interrupted(
        "sandbox-amazon", running_sandbox(catalogue, args.host, args.port), banner,
        args.host, args.port,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
