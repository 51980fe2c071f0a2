"""ClickBank's pure rules: INS decryption and parsing (against bodies encrypted in the test from
the published rule), pay and upsell links, cbpop, upsell flows, and each notification's effects."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from billing import clickbank_effects as fx
from billing import clickbank_ins as ins
from billing import clickbank_links as links
from billing.upsell_flow import FlowError, parse_flows
from tests.clickbank_fixtures import SECRET, VENDOR, encrypt_ins, notification
from web import headers


def read(body: bytes, secret: str = SECRET, vendor: str = VENDOR) -> ins.Notification:
    return ins.read_notification(body, secret=secret, vendor=vendor)[0]


# ---- decryption -----------------------------------------------------------------------


def test_key_is_the_first_32_lowercase_hex_digits_of_sha1_as_ascii() -> None:
    key = ins.aes_key("MYSECRET")
    assert key == hashlib.sha1(b"MYSECRET").hexdigest()[:32].encode()
    assert key != hashlib.sha1(b"MYSECRET").digest()  # not the raw digest
    assert len(key) == 32 and key == key.lower()


@pytest.mark.parametrize("pad", ["pkcs7", "zeros"])
def test_a_notification_encrypted_by_clickbank_reads_back(pad: str) -> None:
    n = read(encrypt_ins(notification(amount="29.90"), pad=pad))
    assert n.transaction_type == "SALE" and n.receipt == "ABCD1234"
    assert n.total_account_amount == Decimal("29.90")
    assert isinstance(n.line_items[0].account_amount, Decimal)
    assert n.line_items[0].account_amount == Decimal("29.90")
    assert n.customer_email == "buyer@example.com"
    assert n.transaction_time == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert n.tracking_codes == ("billing",)


def test_trailing_control_bytes_are_tolerated() -> None:
    text = json.dumps(notification()) + "\x00\x05\x1a"
    assert read(encrypt_ins(text)).receipt == "ABCD1234"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"iv": "AAAA"}', "lacks"),
        (b'{"notification": "@@@", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}', "base64"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(ins.InsRefused, match=why):
        read(body)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(ins.InsRefused, match="wrong secret key"):
        read(encrypt_ins(notification(), "OTHERKEY99"))


def test_truncated_notification_is_refused() -> None:
    outer = json.loads(encrypt_ins(notification()))
    data = base64.b64decode(outer["notification"])
    for cut in (data[:-5], data[:-32], data[:16], b""):
        outer["notification"] = base64.b64encode(cut).decode()
        with pytest.raises(ins.InsRefused):
            read(json.dumps(outer).encode())


def test_encrypted_non_json_is_refused() -> None:
    with pytest.raises(ins.InsRefused, match="JSON"):
        read(encrypt_ins("hello, not json"))


def test_other_vendor_and_unknown_type_are_refused() -> None:
    with pytest.raises(ins.InsRefused, match="another vendor"):
        read(encrypt_ins(notification(vendor="someoneelse")))
    with pytest.raises(ins.InsRefused, match="unknown transactionType"):
        read(encrypt_ins(notification("GIFT")))
    # the nickname compares without case
    assert read(encrypt_ins(notification(vendor=VENDOR.upper()))).vendor == VENDOR.upper()


def test_refusal_messages_carry_no_personal_data() -> None:
    body = encrypt_ins(notification(vendor="x", email="secret.person@example.com"))
    with pytest.raises(ins.InsRefused) as caught:
        read(body)
    assert "secret.person" not in str(caught.value)


def test_idempotency_key_is_role_receipt_type_time() -> None:
    a = read(encrypt_ins(notification(time="2026-12-01T10:00:00-07:00", attempt=1)))
    b = read(encrypt_ins(notification(time="2026-12-01T17:00:00+00:00", attempt=3)))
    assert a.key == b.key == "VENDOR|ABCD1234|SALE|2026-12-01T17:00:00Z"
    assert b.attempt_count == 3
    c = read(encrypt_ins(notification("RFND")))
    assert c.key != a.key


def test_rebill_receipt_has_its_order() -> None:
    n = read(encrypt_ins(notification("BILL", receipt="P3RGBKGB-B002")))
    assert n.base_receipt == "P3RGBKGB"


def test_secret_key_rule() -> None:
    assert ins.secret_key_problem("ABC123") is None
    assert ins.secret_key_problem("A" * 16) is None
    for bad in ("", "a" * 5, "A" * 17, "ABC-123"):
        assert ins.secret_key_problem(bad)


# ---- links ----------------------------------------------------------------------------


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def test_pay_link_carries_reference_flow_and_skin_before_anything_else() -> None:
    ref = links.new_reference()
    url = links.pay_link(
        links.DEFAULT_PAY_BASE,
        vendor="MyVendor",
        item="3",
        reference=ref,
        flow_id="77",
        skin="dark",
        tracking="billing",
    )
    assert url.startswith("https://myvendor.pay.clickbank.net/?")
    q = _query(url)
    assert q == [
        ("cbitems", "3"),
        ("cbskin", "dark"),
        ("cbfid", "77"),
        ("vtid", "billing"),
        (links.REFERENCE_PARAM, ref),
    ]
    assert links.REFERENCE_RE.match(ref) and ref != links.new_reference()


def test_upsell_links_order_skin_then_answer_then_session() -> None:
    accept = links.upsell_link(
        "http://sb/{vendor}/",
        vendor="v",
        item="5",
        accept=True,
        cbf="SESSION1",
        skin="s",
        recurring_consent=True,
    )
    decline = links.upsell_link(
        "http://sb/{vendor}/", vendor="v", item="5", accept=False, cbf="SESSION1", skin="s"
    )
    names = [k for k, _ in _query(accept)]
    assert names.index("cbskin") < names.index("cbur") < names.index("cbf")
    assert dict(_query(accept))["cbur"] == "a" and dict(_query(decline))["cbur"] == "d"
    assert dict(_query(accept))["cbrblaccpt"] == "true"
    assert "cbrblaccpt" not in dict(_query(decline))
    assert dict(_query(decline))["cbf"] == "SESSION1"


def test_the_upsell_form_may_reach_the_order_form_and_nothing_else() -> None:
    """The page's CSP form-action names the order form's origin (the accept button is a form
    to it): the sandbox's exactly; ClickBank's, with the clickbank.net hosts it redirects to."""
    assert links.form_origins("http://127.0.0.1:8123/ccbbdemo/") == ("http://127.0.0.1:8123",)
    assert links.form_origins("https://pay.clickbank.net/") == (
        "https://pay.clickbank.net", "https://*.clickbank.net",
    )  # fmt: skip
    assert links.form_origins("https://evilclickbank.net/") == ("https://evilclickbank.net",)
    policy = headers.csp(form_targets=links.form_origins("https://pay.clickbank.net/"))
    assert "form-action 'self' https://pay.clickbank.net https://*.clickbank.net;" in policy
    assert "form-action 'self';" in headers.CSP  # every other page: our own forms only


def test_cbpop() -> None:
    expected = hashlib.sha1(f"{SECRET}|RCPT0001|1764600000|3".encode()).hexdigest().upper()[:8]
    params = {"cbreceipt": "RCPT0001", "time": "1764600000", "item": "3", "cbpop": expected}
    assert links.cbpop_valid(SECRET, params)
    assert links.cbpop_valid(SECRET, {**params, "cbpop": expected.lower()})
    assert not links.cbpop_valid(SECRET, {**params, "item": "4"})
    assert not links.cbpop_valid("OTHER", params)
    assert not links.cbpop_valid(SECRET, {**params, "cbpop": ""})
    assert not links.cbpop_valid("", params)


# ---- flows ----------------------------------------------------------------------------


class Item:
    def __init__(
        self,
        sku: str,
        price: str,
        kind: str = "pack",
        credits: int = 10,
        recurring: bool = False,
        item: str | None = "9",
    ) -> None:
        self.sku, self.name, self.price, self.currency = sku, sku.title(), Decimal(price), "USD"
        self.kind, self.credits, self.recurring, self.clickbank_item = (
            kind,
            credits,
            recurring,
            item,
        )


ITEMS = {
    "starter": Item("starter", "29", "plan", 50, True, "1"),
    "pack": Item("pack", "19", item="2"),
    "monitor": Item("monitor", "9", "plan", 5, True, "3"),
    "big": Item("big", "150.01", item="4"),
}


def flow(**change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "f",
        "clickbank_flow_id": "1",
        "start": ["starter"],
        "first": "one",
        "offer": [
            {"step": "one", "sku": "pack", "accept": "two", "decline": "three"},
            {"step": "two", "sku": "monitor"},
            {"step": "three", "sku": "monitor"},
        ],
    }
    base.update(change)
    return base


def test_flow_parses_and_branches() -> None:
    flows = parse_flows([flow()], ITEMS.get)
    f = flows["f"]
    assert f.first == "one" and f.next_step("one", accepted=True) == "two"
    assert f.next_step("one", accepted=False) == "three"
    assert f.next_step("two", accepted=True) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offer": [{"step": "one", "sku": "big"}]}, r"above \$150"),
        ({"offer": [{"step": "one", "sku": "nope"}]}, "no product"),
        ({"offer": [{"step": "one", "sku": "pack", "accept": "zzz"}]}, "no such step"),
        ({"offer": [{"step": "one", "sku": "pack", "accept": "one"}]}, "circle"),
        ({"start": ["nope"]}, "lacks"),
        (
            {
                "offer": [
                    {"step": "one", "sku": "pack", "accept": "two"},
                    {"step": "two", "sku": "pack", "accept": "three"},
                    {"step": "three", "sku": "pack", "accept": "four"},
                    {"step": "four", "sku": "pack"},
                ]
            },
            "more than 3",
        ),
        ({"offer": [{"step": "one", "sku": "pack"}, {"step": "lost", "sku": "pack"}]}, "no path"),
    ],
)
def test_bad_flows_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        parse_flows([flow(**change)], ITEMS.get)


def test_price_of_exactly_150_is_allowed() -> None:
    items = {**ITEMS, "edge": Item("edge", "150.00")}
    parse_flows([flow(offer=[{"step": "one", "sku": "edge"}])], items.get)


# ---- effects --------------------------------------------------------------------------

BY_ITEM = {i.clickbank_item: i for i in ITEMS.values()}


def effects_of(kind: str, **kw: object) -> list[fx.Effect]:
    n = read(encrypt_ins(notification(kind, **kw)))  # type: ignore[arg-type]
    return fx.effects(n, BY_ITEM.get)


def test_sale_of_a_plan_activates_and_grants() -> None:
    out = effects_of("SALE", item="1", recurring=True, next_payment="2026-12-31T00:00:00+00:00")
    assert out == [
        fx.Grant(
            "starter",
            50,
            "clickbank:ABCD1234:1",
            "ABCD1234",
            Decimal("29.00"),
            "ClickBank original ABCD1234: starter",
        ),
        fx.PlanActive("starter", datetime(2026, 12, 31, tzinfo=UTC), True),
    ]


def test_each_type() -> None:
    assert [type(e) for e in effects_of("SALE", item="2", line_type="UPSELL")] == [fx.Grant]
    bill = effects_of("BILL", item="1", receipt="ABCD1234-B002", recurring=True)
    assert isinstance(bill[0], fx.Grant) and bill[0].key == "clickbank:ABCD1234-B002:1"
    rf = effects_of("RFND", item="1")
    assert rf == [
        fx.Reverse(
            "clickbank:ABCD1234:1",
            "clickbank-reversal:ABCD1234:1",
            "ABCD1234",
            "ClickBank RFND ABCD1234: starter",
        ),
        fx.PlanEnded("starter"),
    ]
    # a chargeback after a refund of the same payment reverses the same thing: one key
    assert effects_of("CGBK", item="1")[0].key == rf[0].key  # type: ignore[union-attr]
    assert [type(e) for e in effects_of("INSF", item="2")] == [fx.Reverse]
    assert effects_of("CANCEL-REBILL", item="1") == [fx.Renewals(False)]
    assert effects_of("UNCANCEL-REBILL", item="1") == [fx.Renewals(True)]
    chg = effects_of("SUBSCRIPTION-CHG", item="3", recurring=True)
    assert [type(e) for e in chg] == [fx.PlanChanged] and chg[0].sku == "monitor"  # type: ignore[union-attr]
    assert effects_of("TEST") == [] and effects_of("TEST_SALE") == []
    assert effects_of("SALE", role="AFFILIATE") == []
    assert effects_of("SALE", item="999") == [fx.Unknown("item 999 is not in the catalogue")]
    assert effects_of("BILL", item="2") == [fx.Unknown("a rebill of pack, which is not a plan")]


def test_an_offer_speaks_the_languages_the_catalogue_gives() -> None:
    offer = {"step": "one", "sku": "pack", "headline": "Add a pack", "text": "Never expires.",
             "headline_fr": "Ajoutez un pack", "text_fr": "N'expire jamais."}  # fmt: skip
    only_headline = {"step": "one", "sku": "pack", "headline": "Add a pack",
                     "text": "Never expires.", "headline_fr": "Ajoutez un pack"}  # fmt: skip
    one = parse_flows([flow(offer=[offer])], ITEMS.get)["f"].offer("one")
    assert one is not None
    assert one.words("fr") == ("Ajoutez un pack", "N'expire jamais.")
    assert one.words("en") == ("Add a pack", "Never expires.")  # as written
    partial = parse_flows([flow(offer=[only_headline])], ITEMS.get)["f"].offer("one")
    assert partial is not None and partial.words("fr") == ("Ajoutez un pack", "Never expires.")
