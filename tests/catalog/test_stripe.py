"""Stripe's catalog definition (marketplace_service/catalog/definitions/stripe.yaml), run by the
generic connector, against localstripe, a fake Stripe no one here wrote (both real processes):
the conformance suite;
customers and charges paged with Stripe's ``starting_after``/``has_more``; charges read
incrementally by ``created[gt]``; a customer created (under the key Stripe gives it), updated and
deleted through writes; a refund through an action; Stripe's refusals reported with its
message."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedos_sdk.testing import conformance_suite, serve
from seedos_sdk.testing.localstripe import KEY

DEFINITIONS = (
    Path(__file__).resolve().parents[2] / "marketplace_service" / "catalog" / "definitions"
)
PAGE = 3
CREDENTIALS = {"api_key": KEY}


@pytest.fixture(scope="module")
def stripe_connector():
    env = {  # localstripe is on loopback, which the egress rule must list
        "SEEDOS_DEFINITIONS": str(DEFINITIONS),
        "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    with serve("seedos_sdk.declarative.server:app_factory", factory=True, cwd=DEFINITIONS,
               env=env) as served:  # fmt: skip
        listing = httpx.get(served.url + "/definitions", timeout=10).json()
        found = [d for d in listing["items"] if d["name"] == "stripe"]
        assert found and not listing["refused"], listing
        yield served.url + found[0]["path"]


@pytest.fixture(scope="module")
def stripe_config(stripe_url):
    return {"base_url": stripe_url, "page_size": PAGE}


@pytest.fixture
def stripe(stripe_url):
    with httpx.Client(base_url=stripe_url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module", autouse=True)
def seeded(stripe_url):
    """Customers and charges enough for several pages of each."""
    with httpx.Client(base_url=stripe_url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as stripe:  # fmt: skip
        for n in range(7):
            made = stripe.post("/v1/customers", data={"email": f"c{n}@example.com",
                                                      "name": f"Customer {n}"})  # fmt: skip
            assert made.status_code == 200, made.text
        for n in range(5):
            _charge(stripe, 100 + n)


def _charge(stripe: httpx.Client, amount: int) -> dict[str, Any]:
    """A succeeded card charge of ``amount`` cents (a test card's payment method first)."""
    method = stripe.post("/v1/payment_methods", data={
        "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123",
    })  # fmt: skip
    assert method.status_code == 200, method.text
    made = stripe.post("/v1/charges", data={"amount": str(amount), "currency": "eur",
                                            "source": method.json()["id"]})  # fmt: skip
    assert made.status_code == 200 and made.json()["status"] == "succeeded", made.text
    return made.json()


def _everything(stripe: httpx.Client, path: str) -> list[dict[str, Any]]:
    """Every object of a Stripe list, read directly."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = stripe.get(path, params=params).json()
        out += page["data"]
        if not page["has_more"]:
            return out
        params["starting_after"] = page["data"][-1]["id"]


def _pages(url: str, config: dict, stream: str, cursor: str | None = None) -> tuple[list, str]:
    """Every page of a read through the contract, from ``cursor``: (pages, the last cursor)."""
    pages = []
    for _ in range(100):
        body = {"config": config, "credentials": CREDENTIALS, "cursor": cursor}
        r = httpx.post(f"{url}/streams/{stream}/read", timeout=30, json=body)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page["records"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return pages, cursor
    raise AssertionError("the read did not end")


def _write(url: str, config: dict, stream: str, *, upserts=(), deletes=()) -> list[dict]:
    r = httpx.post(f"{url}/streams/{stream}/write", timeout=30, json={
        "config": config, "credentials": CREDENTIALS, "upserts": list(upserts),
        "deletes": list(deletes)})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["results"]


TestConformance = conformance_suite(
    url_fixture="stripe_connector",
    config="stripe_config",
    credentials=CREDENTIALS,
    write_samples={
        "customers": [
            {"email": "ada@example.com", "name": "Ada Lovelace"},
            {"email": "alan@example.com", "name": "Alan Turing", "description": "from a test"},
        ]
    },
)


@pytest.mark.parametrize("stream", ["customers", "charges"])
def test_every_object_is_read_once_over_pages(stream, stripe, stripe_connector, stripe_config):
    pages, _cursor = _pages(stripe_connector, stripe_config, stream)
    assert len(pages) > 1 and all(len(p) <= PAGE for p in pages)
    read = [r["id"] for p in pages for r in p]
    assert len(read) == len(set(read))
    assert set(read) == {o["id"] for o in _everything(stripe, f"/v1/{stream}")}


def test_charges_are_read_incrementally(stripe, stripe_connector, stripe_config):
    """A sync after the first reads only the charges created since (and those of the last
    second, the lookback), not the older ones."""
    time.sleep(1.1)  # charges older than the next sync's lookback
    older = {c["id"] for c in _everything(stripe, "/v1/charges")}
    last = [_charge(stripe, 200 + n)["id"] for n in range(2)]  # the newest second
    _pages_read, cursor = _pages(stripe_connector, stripe_config, "charges")
    time.sleep(1.1)
    new = [_charge(stripe, 300 + n)["id"] for n in range(4)]
    pages, _cursor = _pages(stripe_connector, stripe_config, "charges", cursor)
    read = {r["id"] for p in pages for r in p}
    assert set(new) <= read and len(pages) > 1
    assert not read & older, "charges older than the cursor were read again"
    assert read <= set(new) | set(last)


def test_a_customer_created_updated_and_deleted_through_writes(
    stripe, stripe_connector, stripe_config
):
    before = {c["id"] for c in _everything(stripe, "/v1/customers")}
    # a key the platform made: Stripe refuses the update (404), so the customer is created
    grace = {"id": "platform-made-1", "email": "grace@example.com", "name": "Grace Hopper"}
    [made] = _write(stripe_connector, stripe_config, "customers", upserts=[grace])
    assert made["ok"] and made["key"] == "platform-made-1", made
    new_id = made["record"]["id"]
    assert new_id.startswith("cus_") and new_id not in before
    assert made["record"]["email"] == "grace@example.com"
    after = {c["id"]: c for c in _everything(stripe, "/v1/customers")}
    assert set(after) == before | {new_id}
    assert after[new_id]["name"] == "Grace Hopper"

    [updated] = _write(stripe_connector, stripe_config, "customers", upserts=[
        {"id": new_id, "email": "grace@example.com", "name": "Rear Admiral Hopper",
         "description": "COBOL"}])  # fmt: skip
    assert updated["ok"] and updated["key"] == new_id and updated["record"]["id"] == new_id
    now = stripe.get(f"/v1/customers/{new_id}").json()
    assert (now["name"], now["description"]) == ("Rear Admiral Hopper", "COBOL")
    assert len(_everything(stripe, "/v1/customers")) == len(after)  # updated, not created again

    [gone, again] = _write(stripe_connector, stripe_config, "customers",
                           deletes=[new_id, new_id])  # fmt: skip
    assert gone["ok"] and again["ok"]  # deleting what is gone is done (404 is ok)
    assert stripe.get(f"/v1/customers/{new_id}").status_code == 404


def test_a_refusal_is_reported_with_stripes_message(stripe_connector, stripe_config):
    r = httpx.post(f"{stripe_connector}/actions/refund_charge", timeout=30, json={
        "config": stripe_config, "credentials": CREDENTIALS,
        "input": {"charge": "ch_nosuchcharge"}})  # fmt: skip
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
    problem = r.json()
    assert problem["category"] == "permanent", problem
    assert "Not Found" in problem["detail"]  # localstripe's error.message


def test_a_refund_through_the_action(stripe, stripe_connector, stripe_config):
    paid = _charge(stripe, 1500)
    r = httpx.post(f"{stripe_connector}/actions/refund_charge", timeout=30, json={
        "config": stripe_config, "credentials": CREDENTIALS,
        "input": {"charge": paid["id"], "amount": 400}})  # fmt: skip
    assert r.status_code == 200, r.text
    refund = r.json()["output"]
    assert refund["id"].startswith("re_") and (refund["amount"], refund["charge"]) == (
        400,
        paid["id"],
    )
    assert stripe.get(f"/v1/charges/{paid['id']}").json()["amount_refunded"] == 400

    # input that breaks the action's schema is refused before Stripe hears of it
    r = httpx.post(f"{stripe_connector}/actions/refund_charge", timeout=30, json={
        "config": stripe_config, "credentials": CREDENTIALS,
        "input": {"charge": "not-a-charge", "amount": 0}})  # fmt: skip
    assert r.status_code == 422
    assert stripe.get(f"/v1/charges/{paid['id']}").json()["amount_refunded"] == 400


def test_a_bad_key_fails_the_check_with_stripes_message(stripe_connector, stripe_config):
    body = {"config": stripe_config, "credentials": {"api_key": "pk_live_nope"}}
    r = httpx.post(f"{stripe_connector}/check", timeout=30, json=body)
    assert r.status_code >= 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["category"] == "permanent"
