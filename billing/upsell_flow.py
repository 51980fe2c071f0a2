"""PitchPlus upsell flows, as the catalogue's ``[[flow]]`` sections describe them, checked
against ClickBank's rules (seed 000): at most three offers on any path, one product per page,
each product at most $150, each step's next offer on accept and on decline. Pure.

```toml
[[flow]]
id = "after-plan"          # ours: in the upsell pages' addresses
clickbank_flow_id = "1"    # ClickBank's flow id: the cbfid of the plans' pay links
start = ["starter", "pro"] # the plans whose pay link starts the flow
first = "pack"             # the first offer's step
skin = ""                  # optional order-form skin (cbskin)

[[flow.offer]]
step = "pack"
sku = "pack-100"
headline = "Add 100 scans to your order"
text = "One-off pack, never expires."
headline_fr = "Ajoutez 100 scans à votre commande"   # optional: the words in another language
text_fr = "Pack unique, sans date d'expiration."
accept = "monitor"         # the next step after a purchase ("" ends the flow)
decline = ""               # the next step after a decline
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

MAX_OFFERS = 3
MAX_PRICE = Decimal("150")


LANGUAGE_KEY = re.compile(r"(headline|text)_([a-z]{2})")


def _languages(raw: dict[str, Any], where: str) -> tuple[tuple[str, tuple[str, str]], ...]:
    """An offer's ``headline_<lang>`` / ``text_<lang>`` keys, by language."""
    found: dict[str, dict[str, str]] = {}
    for key in raw:
        if m := LANGUAGE_KEY.fullmatch(str(key)):
            found.setdefault(m.group(2), {})[m.group(1)] = _str(raw, key, where, required=False)
    return tuple(
        (code, (words.get("headline", ""), words.get("text", "")))
        for code, words in sorted(found.items())
    )


class FlowError(ValueError):
    """The catalogue's flows break a rule; the message says which and how to fix it."""


class OfferProduct(Protocol):
    """What an upsell page needs of a catalogue item (billing.catalogue.CatalogueItem)."""

    @property
    def sku(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def recurring(self) -> bool: ...
    @property
    def clickbank_item(self) -> str | None: ...


@dataclass(frozen=True)
class Offer:
    step: str
    sku: str
    headline: str
    text: str
    accept: str | None  # the next step on a purchase (None: the flow ends)
    decline: str | None
    # the headline and text in other languages ("fr": (headline, text)), from headline_fr…
    languages: tuple[tuple[str, tuple[str, str]], ...] = ()

    def words(self, locale: str) -> tuple[str, str]:
        """(headline, text) in ``locale`` when the catalogue gives them, else as written."""
        found = dict(self.languages).get(locale)
        if found is None:
            return self.headline, self.text
        return found[0] or self.headline, found[1] or self.text


@dataclass(frozen=True)
class Flow:
    id: str
    clickbank_flow_id: str
    start: tuple[str, ...]
    first: str
    offers: dict[str, Offer]
    skin: str | None = None

    def offer(self, step: str) -> Offer | None:
        return self.offers.get(step)

    def next_step(self, step: str, *, accepted: bool) -> str | None:
        offer = self.offers[step]
        return offer.accept if accepted else offer.decline


def _str(raw: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise FlowError(f"{where}: {key} must be text")
    text = str(value).strip()
    if required and not text:
        raise FlowError(f"{where}: {key} is missing")
    return text


def _depth(offers: dict[str, Offer], step: str, seen: tuple[str, ...], where: str) -> int:
    if step in seen:
        raise FlowError(f"{where}: offers {' → '.join((*seen, step))} go round in a circle")
    offer = offers[step]
    nexts = [s for s in (offer.accept, offer.decline) if s]
    return 1 + max((_depth(offers, s, (*seen, step), where) for s in nexts), default=0)


def _reachable(offers: dict[str, Offer], first: str) -> set[str]:
    todo, seen = [first], set()
    while todo:
        step = todo.pop()
        if step in seen:
            continue
        seen.add(step)
        offer = offers[step]
        todo.extend(s for s in (offer.accept, offer.decline) if s)
    return seen


def parse_flows(
    sections: Iterable[dict[str, Any]], product: Callable[[str], OfferProduct | None]
) -> dict[str, Flow]:
    """The ``[[flow]]`` sections checked, by flow id. ``product(sku)`` finds a catalogue item."""
    flows: dict[str, Flow] = {}
    cb_ids: set[str] = set()
    for n, raw in enumerate(sections, 1):
        if not isinstance(raw, dict):
            raise FlowError(f"[[flow]] number {n} is not a table")
        where = f"[[flow]] {raw.get('id', n)!s}"
        flow_id = _str(raw, "id", where)
        cb_id = _str(raw, "clickbank_flow_id", where)
        if flow_id in flows or cb_id in cb_ids:
            raise FlowError(f"{where}: two flows share the id {flow_id} or the cbfid {cb_id}")
        start = raw.get("start", [])
        if not isinstance(start, list) or not all(isinstance(s, str) for s in start):
            raise FlowError(f"{where}: start must be a list of plan skus")
        for sku in start:
            if product(sku) is None:
                raise FlowError(f"{where}: start names {sku!r}, which the catalogue lacks")
        offers: dict[str, Offer] = {}
        raw_offers = raw.get("offer", [])
        if not isinstance(raw_offers, list) or not raw_offers:
            raise FlowError(f"{where}: add at least one [[flow.offer]]")
        for m, o in enumerate(raw_offers, 1):
            if not isinstance(o, dict):
                raise FlowError(f"{where}: offer {m} is not a table")
            owhere = f"{where}, offer {o.get('step', m)!s}"
            step = _str(o, "step", owhere)
            if step in offers:
                raise FlowError(f"{owhere}: two offers are called {step}")
            sku = _str(o, "sku", owhere)
            item = product(sku)
            if item is None:
                raise FlowError(f"{owhere}: the catalogue has no product {sku!r}")
            if not item.clickbank_item:
                raise FlowError(f"{owhere}: {sku} has no clickbank_item to sell")
            if item.price > MAX_PRICE:
                raise FlowError(
                    f"{owhere}: {sku} costs {item.price} {item.currency}; ClickBank refuses "
                    f"upsells above ${MAX_PRICE}: offer a cheaper product"
                )
            offers[step] = Offer(
                step=step,
                sku=sku,
                headline=_str(o, "headline", owhere, required=False) or item.name,
                text=_str(o, "text", owhere, required=False),
                accept=_str(o, "accept", owhere, required=False) or None,
                decline=_str(o, "decline", owhere, required=False) or None,
                languages=_languages(o, owhere),
            )
        for offer in offers.values():
            for nxt in (offer.accept, offer.decline):
                if nxt and nxt not in offers:
                    raise FlowError(f"{where}: offer {offer.step} leads to {nxt!r}: no such step")
        first = _str(raw, "first", where, required=False) or next(iter(offers))
        if first not in offers:
            raise FlowError(f"{where}: first names {first!r}: no such step")
        if _depth(offers, first, (), where) > MAX_OFFERS:
            raise FlowError(f"{where}: a buyer could see more than {MAX_OFFERS} offers")
        unreachable = set(offers) - _reachable(offers, first)
        if unreachable:
            raise FlowError(f"{where}: no path leads to {', '.join(sorted(unreachable))}")
        skin = _str(raw, "skin", where, required=False) or None
        flows[flow_id] = Flow(flow_id, cb_id, tuple(start), first, offers, skin)
        cb_ids.add(cb_id)
    return flows


@lru_cache
def load_flows() -> dict[str, Flow]:
    """The catalogue's flows, checked (once per process)."""
    from billing.catalogue import load_catalogue

    catalogue = load_catalogue()
    return parse_flows(catalogue.section("flow"), catalogue.get)


def flow_starting_at(flows: dict[str, Flow], sku: str) -> Flow | None:
    """The flow a plan's pay link starts (its cbfid), if any."""
    return next((f for f in flows.values() if sku in f.start), None)


def flow_by_clickbank_id(flows: dict[str, Flow], cbfid: str) -> Flow | None:
    return next((f for f in flows.values() if f.clickbank_flow_id == cbfid), None)
