"""Product checks through Amazon's Creators API (``python-amazon-paapi`` ≥ 7, async client).

One API request per chunk of ≤ 10 ASINs, each attempt (retries included) paced by a
:class:`~scanner.ratelimit.RateLimiter`; the library's own throttling and retries are off because
they are per client object and per process. Failures that only the account owner can fix
(credentials, partner tag, eligibility) raise :class:`AmazonAccountError` with the fix.

The library takes about a second to import (its models): a scan imports this module once its
page workers are starting, so the two overlap (``scanner.scan``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import httpx
from amazon_creatorsapi.aio import AsyncAmazonCreatorsApi
from amazon_creatorsapi.errors import (
    AccessDeniedError,
    AmazonCreatorsApiError,
    AssociateValidationError,
    AuthenticationError,
    InvalidArgumentError,
    ItemsNotFoundError,
    RequestError,
    TooManyRequestsError,
)
from creatorsapi_python_sdk.models.get_items_resource import GetItemsResource

from scanner.amazon import (
    MAX_ASINS_PER_REQUEST,
    AmazonAccountError,
    ProductResult,
    check_access,
    verdicts_for,
)
from scanner.classify import ItemError, ItemFacts, Listing, Status, Verdict
from scanner.ratelimit import RateLimiter
from scanner.settings import AmazonAccess

log = logging.getLogger(__name__)

RESOURCES = [
    GetItemsResource("itemInfo.title"),
    GetItemsResource("offersV2.listings.availability"),
    GetItemsResource("offersV2.listings.isBuyBoxWinner"),
]


def _explain(exc: AmazonCreatorsApiError, access: AmazonAccess) -> AmazonAccountError | None:
    """The fix for an account-level refusal, or None for a failure worth retrying."""
    text = str(exc)
    if isinstance(exc, AssociateValidationError) or "InvalidPartnerTag" in text:
        return AmazonAccountError(
            f"the partner tag {access.partner_tag!r} is not tied to these credentials on "
            f"{access.marketplace}: use the tracking ID of the Associates account that created "
            "the credentials, and the country they were created for"
        )
    if isinstance(exc, AccessDeniedError):
        if "AssociateNotEligible" in text:
            return AmazonAccountError(
                "your Associates account is not eligible for the Creators API yet (Amazon "
                "requires recent qualifying sales): once it is, the scan will work unchanged"
            )
        return AmazonAccountError(f"Amazon denied access to the Creators API: {_short(text)}")
    if isinstance(exc, AuthenticationError):
        transient = isinstance(exc.__cause__, httpx.HTTPError) or re.search(r"status 5\d\d", text)
        if transient:
            return None
        return AmazonAccountError(
            "Amazon refused the credentials: check the Credential ID, the Credential Secret and "
            f"the version ({access.version}); if you have not registered for the Creators API "
            "yet, do so in Associates Central first"
        )
    return None


def _short(text: str) -> str:
    return text.splitlines()[0][:300] if text else "no details"


def _facts(item: Any) -> ItemFacts:
    title = None
    info = item.item_info
    if info is not None and info.title is not None:
        title = info.title.display_value
    listings: list[Listing] = []
    if item.offers_v2 is not None and item.offers_v2.listings:
        for listing in item.offers_v2.listings:
            availability = listing.availability
            listings.append(
                Listing(
                    availability.type if availability else None,
                    availability.message if availability else None,
                    bool(listing.is_buy_box_winner),
                )
            )
    return ItemFacts(item.asin, title, item.detail_page_url, tuple(listings))


class ProductChecker:
    """Checks products of one marketplace with one credential. Use ``async with``."""

    def __init__(self, access: AmazonAccess, limiter: RateLimiter) -> None:
        check_access(access)
        self.access = access
        self._limiter = limiter
        self.requests = 0  # HTTP requests to getItems, retries included
        self._api = AsyncAmazonCreatorsApi(
            credential_id=access.credential_id,
            credential_secret=access.credential_secret,
            version=access.version,
            tag=access.partner_tag,
            marketplace=access.marketplace,
            throttling=0,
            retries=0,
            timeout=access.timeout,
            host=access.api_host,
            auth_endpoint=access.auth_endpoint,
        )

    async def __aenter__(self) -> ProductChecker:
        await self._api.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._api.__aexit__(exc_type, exc, tb)

    async def verify(self) -> None:
        """Fail fast on refused credentials: get an OAuth token (no API request is spent)."""
        manager = getattr(self._api, "_token_manager", None)
        if manager is None:  # a library version without it: the first lookup will tell
            return
        for attempt in range(self.access.retries + 1):
            try:
                await manager.get_token()
                return
            except AuthenticationError as exc:
                fatal = _explain(exc, self.access)
                if fatal is not None:
                    raise fatal from None
                if attempt == self.access.retries:
                    raise AmazonAccountError(
                        f"cannot reach Amazon's sign-in service: {_short(str(exc))}; try again "
                        "in a few minutes"
                    ) from None
                await asyncio.sleep(self.access.backoff * 2**attempt)

    async def check(self, asins: Sequence[str]) -> list[ProductResult]:
        """Status of up to 10 ASINs, in one API request (plus retries)."""
        if not 0 < len(asins) <= MAX_ASINS_PER_REQUEST:
            raise ValueError("check() takes 1 to 10 ASINs")
        access = self.access
        last: str = ""
        for attempt in range(access.retries + 1):
            try:
                # The token first: fetched inside the paced slot, it would delay this request
                # until it bunched up with the next one, and Amazon would answer 429.
                await self._token()
                await self._limiter.acquire()
                self.requests += 1
                items = await self._api.get_items(
                    list(asins), resources=RESOURCES, include_unavailable=True
                )
            except ItemsNotFoundError:
                return [
                    self._result(a, None, Verdict(Status.REMOVED, None, "not found on Amazon"))
                    for a in asins
                ]
            except (TooManyRequestsError, RequestError, InvalidArgumentError) as exc:
                fatal = _explain(exc, access)
                if fatal is not None:
                    raise fatal from None
                if isinstance(exc, InvalidArgumentError):
                    return self._all_error(
                        asins, f"Amazon rejected the request: {_short(str(exc))}"
                    )
                last = _short(str(exc))
                log.info("Amazon request failed (attempt %d): %s", attempt + 1, last)
                if attempt < access.retries:
                    await asyncio.sleep(access.backoff * 2**attempt)
                continue
            except AmazonCreatorsApiError as exc:
                fatal = _explain(exc, access)
                if fatal is not None:
                    raise fatal from None
                return self._all_error(asins, _short(str(exc)))
            present = [_facts(i) for i in items if i.model_fields_set - {"asin"}]
            errors = [ItemError(e.code, e.message) for e in items.errors]
            verdicts = verdicts_for([a.upper() for a in asins], present, errors)
            return [self._result(asin, *verdicts[asin.upper()]) for asin in asins]
        return self._all_error(
            asins, f"Amazon API unavailable after {access.retries + 1} attempts: {last}"
        )

    async def _token(self) -> None:
        manager = getattr(self._api, "_token_manager", None)
        if manager is not None:  # cached until it nearly expires
            await manager.get_token()

    def _result(self, asin: str, item: ItemFacts | None, verdict: Verdict) -> ProductResult:
        return ProductResult(
            asin=asin,
            marketplace=self.access.marketplace,
            status=verdict.status,
            title=item.title if item else None,
            availability=verdict.availability,
            detail_page_url=item.detail_page_url if item else None,
            error=verdict.reason if verdict.status is Status.ERROR else None,
        )

    def _all_error(self, asins: Sequence[str], reason: str) -> list[ProductResult]:
        return [self._result(a, None, Verdict(Status.ERROR, None, reason)) for a in asins]


# an ASIN to look up when testing a connection: any answer about it, "not found" included,
# proves that Amazon accepted the credentials, the partner tag and the marketplace
PROBE_ASIN = "B00X4WHP5E"


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    ok: bool
    message: str  # what happened; when not ok, what to fix


async def probe_connection(access: AmazonAccess, limiter: RateLimiter) -> ConnectionCheck:
    """One real product lookup with these credentials (paced by ``limiter`` like a scan's), and
    what the user should fix when Amazon refuses it."""
    access = replace(access, retries=1, timeout=min(access.timeout, 15.0))
    try:
        async with ProductChecker(access, limiter) as checker:
            await checker.verify()
            [result] = await checker.check([PROBE_ASIN])
    except AmazonAccountError as exc:
        text = str(exc)
        return ConnectionCheck(False, text[:1].upper() + text[1:] + ".")
    if result.status is Status.ERROR:
        return ConnectionCheck(
            False, f"Amazon did not answer the test lookup: {result.error}. Try again later."
        )
    return ConnectionCheck(
        True,
        f"Connected: Amazon answered a product lookup on {access.marketplace} with the partner "
        f"tag {access.partner_tag}.",
    )
