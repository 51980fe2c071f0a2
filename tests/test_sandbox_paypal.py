"""The PayPal Payouts sandbox, driven by our real client (affiliates.paypal_payouts) over
loopback: token, create batch, a repeated sender_batch_id refused with a link to the original,
batch status with injected item failures, cancel of an unclaimed item, failures of the whole
call; the secret never logged."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import pytest

from affiliates.paypal_payouts import (
    BatchRefused,
    DuplicateBatch,
    PayoutItem,
    PaypalPayouts,
    PaypalRefused,
    PaypalUnavailable,
)
from ccbb.sandbox.paypal import RunningPaypal, running_paypal
from tests.sandbox_thread import serve_in_thread

CLIENT_ID = "AbCdClientIdSandbox"
SECRET = "EFgh-very-secret-value-never-logged"


@pytest.fixture
def paypal() -> Iterator[RunningPaypal]:
    with serve_in_thread(lambda: running_paypal(CLIENT_ID, SECRET), "the PayPal sandbox") as pp:
        yield pp


def _client(pp: RunningPaypal, secret: str = SECRET, timeout: float = 10.0) -> PaypalPayouts:
    return PaypalPayouts(base=pp.url, client_id=CLIENT_ID, client_secret=secret, timeout=timeout)


ITEMS = [
    PayoutItem("ann@example.com", Decimal("51.02"), "t-1", "note"),
    PayoutItem("bob@example.com", Decimal("60.00"), "t-2"),
    PayoutItem("cat@example.com", Decimal("75.5"), "t-3"),
]


def test_a_batch_is_paid_once_and_its_status_read_back(
    paypal: RunningPaypal, caplog: pytest.LogCaptureFixture
) -> None:
    paypal.state.faults.receivers = {"bob@example.com": "FAILED", "cat@example.com": "UNCLAIMED"}
    caplog.set_level(logging.DEBUG)

    async def go() -> tuple[str, DuplicateBatch, list[tuple[str, str, Decimal, str]], str]:
        async with _client(paypal) as client:
            batch_id = await client.create_batch(
                sender_batch_id="ccbb-payout-2026-12-10", items=ITEMS, email_subject="Hi"
            )
            with pytest.raises(DuplicateBatch) as dup:
                await client.create_batch(
                    sender_batch_id="ccbb-payout-2026-12-10", items=ITEMS[:1], email_subject="Hi"
                )
            status = await client.batch(batch_id)
            seen = [(i.sender_item_id, i.status, i.amount, i.error) for i in status.items]
            unclaimed = next(i for i in status.items if i.status == "UNCLAIMED")
            cancelled = await client.cancel_item(unclaimed.payout_item_id)
            assert cancelled is not None
            assert await client.cancel_item(unclaimed.payout_item_id) is None  # once
            return batch_id, dup.value, seen, cancelled.status

    batch_id, dup, seen, after = asyncio.run(go())
    assert dup.payout_batch_id == batch_id  # the refusal links to the original batch
    assert [s[:3] for s in seen] == [
        ("t-1", "SUCCESS", Decimal("51.02")),
        ("t-2", "FAILED", Decimal("60.00")),
        ("t-3", "UNCLAIMED", Decimal("75.50")),
    ]
    assert seen[1][3].startswith("RECEIVER_ACCOUNT_LOCKED") and seen[0][3] == ""
    assert after == "RETURNED"
    # the record: one batch, the items as sent (amounts as strings with two decimals)
    [record] = paypal.state.record()
    assert record["sender_batch_id"] == "ccbb-payout-2026-12-10"
    assert [(i["receiver"], i["value"]) for i in record["items"]] == [
        ("ann@example.com", "51.02"), ("bob@example.com", "60.00"), ("cat@example.com", "75.50")
    ]  # fmt: skip
    assert paypal.state.create_calls == 2 and paypal.state.token_calls == 1
    with urllib.request.urlopen(f"{paypal.url}/_sandbox/batches") as r:
        assert json.load(r)[0]["payout_batch_id"] == batch_id
    assert SECRET not in caplog.text and SECRET not in repr(_client(paypal))


def test_the_duplicate_answer_is_what_paypal_documents(paypal: RunningPaypal) -> None:
    async def go() -> tuple[int, dict[str, object]]:
        async with _client(paypal) as client:
            await client.create_batch(sender_batch_id="b-1", items=ITEMS[:1], email_subject="s")
            token = await client.token()
        body = json.dumps({
            "sender_batch_header": {"sender_batch_id": "b-1"},
            "items": [{"recipient_type": "EMAIL", "receiver": "x@example.com",
                       "amount": {"value": "1.00", "currency": "USD"}}],
        }).encode()  # fmt: skip
        req = urllib.request.Request(
            f"{paypal.url}/v1/payments/payouts", data=body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(req)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        raise AssertionError("a repeated sender_batch_id was accepted")

    status, answer = asyncio.run(go())
    assert status == 400 and answer["name"] == "USER_BUSINESS_ERROR"
    [detail] = answer["details"]  # type: ignore[misc]
    assert detail["field"] == "SENDER_BATCH_ID"
    assert "/v1/payments/payouts/" in detail["link"][0]["href"]
    assert len(paypal.state.record()) == 1


def test_wrong_credentials_invalid_batches_and_failed_calls(paypal: RunningPaypal) -> None:
    async def go() -> None:
        async with _client(paypal, secret="wrong") as client:
            with pytest.raises(PaypalRefused) as refused:
                await client.token()
            assert "wrong" not in str(refused.value) and "401" in str(refused.value)
        async with _client(paypal) as client:
            with pytest.raises(BatchRefused) as bad:
                await client.create_batch(
                    sender_batch_id="v-1", email_subject="s",
                    items=[PayoutItem("not-an-email", Decimal("1.00"), "x")],
                )  # fmt: skip
            assert "items[0].receiver" in str(bad.value)
            # a 500 before anything is made, then a 500 after the batch was made (lost answer)
            paypal.state.faults.fail_posts = 1
            with pytest.raises(PaypalUnavailable):
                await client.create_batch(sender_batch_id="f-1", items=ITEMS, email_subject="s")
            assert paypal.state.record() == []
            paypal.state.faults.lose_answers = 1
            with pytest.raises(PaypalUnavailable):
                await client.create_batch(sender_batch_id="f-1", items=ITEMS, email_subject="s")
            assert len(paypal.state.record()) == 1
            with pytest.raises(DuplicateBatch) as dup:  # the retry finds it
                await client.create_batch(sender_batch_id="f-1", items=ITEMS, email_subject="s")
            assert dup.value.payout_batch_id == paypal.state.record()[0]["payout_batch_id"]
        # a held answer is a timeout for the client; the batch was made all the same
        paypal.state.faults.hold_posts = 2.0
        async with _client(paypal, timeout=0.5) as client:
            with pytest.raises(PaypalUnavailable):
                await client.create_batch(sender_batch_id="h-1", items=ITEMS, email_subject="s")
        assert len(paypal.state.record()) == 2

    asyncio.run(go())


def test_items_pending_at_first_then_final(paypal: RunningPaypal) -> None:
    paypal.state.faults.pending_reads = 1

    async def go() -> tuple[list[str], list[str], str]:
        async with _client(paypal) as client:
            batch_id = await client.create_batch(
                sender_batch_id="p-1", items=ITEMS[:2], email_subject="s"
            )
            first = await client.batch(batch_id)
            second = await client.batch(batch_id)
            return ([i.status for i in first.items], [i.status for i in second.items],
                    first.batch_status)  # fmt: skip

    first, second, batch_status = asyncio.run(go())
    assert first == ["PENDING", "PENDING"] and batch_status == "PROCESSING"
    assert second == ["SUCCESS", "SUCCESS"]
