"""Two-way sync with Stripe's catalog definition (marketplace_service/catalog/definitions/
stripe.yaml), run by the generic connector against localstripe, a fake Stripe no one here wrote,
installed from the catalog like any connector: customers and charges pulled over Stripe's pages;
a customer made on the platform under a key of its own created in Stripe and moved to the key
Stripe gave it (no second copy at the next pull); edits both ways; a deletion pushed; new
charges pulled incrementally."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common.roles import Role
from marketplace_service.catalog.definitions import DEFINITIONS
from seedos_sdk.testing.localstripe import KEY
from tests.connector_service.rig import generic_connector, register, wait_status
from tests.connector_service.test_sync import World
from tests.support import make_tenant


@pytest.fixture(scope="module")
def stripe_endpoint(tmp_path_factory):
    with generic_connector(tmp_path_factory.mktemp("generic"), DEFINITIONS) as url_of:
        yield url_of("stripe")


@pytest.fixture
async def world(rig, dsn, stripe_url, stripe_endpoint):
    """A new tenant's install of Stripe's definition on a localstripe seeded with 5 customers
    and 4 charges (3 a page); scheduled runs off."""
    stripe = httpx.AsyncClient(base_url=stripe_url, headers={"Authorization": f"Bearer {KEY}"},
                               timeout=30)  # fmt: skip
    await stripe.delete("/_config/data")  # localstripe's own reset
    for n in range(5):
        made = await stripe.post("/v1/customers", data={"email": f"c{n}@example.com",
                                                        "name": f"Customer {n}"})  # fmt: skip
        assert made.status_code == 200, made.text
    for n in range(4):
        await _charge(stripe, 100 + n)
    slug = await register(dsn, stripe_endpoint)
    t = await make_tenant(dsn, role=Role.editor)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    r = await client.post("/api/v1/integrations", json={
        "connector": slug, "config": {"base_url": stripe_url, "page_size": 3},
        "credentials": {"api_key": KEY}})  # fmt: skip
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await client.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    assert r.status_code == 200, r.text
    assert (await wait_status(client, iid, "active"))["status"] == "active"
    try:
        yield World(client, stripe, iid)
    finally:
        await client.aclose()
        await stripe.aclose()


async def _charge(stripe: httpx.AsyncClient, amount: int) -> str:
    method = await stripe.post("/v1/payment_methods", data={
        "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"})  # fmt: skip
    assert method.status_code == 200, method.text
    made = await stripe.post("/v1/charges", data={"amount": str(amount), "currency": "eur",
                                                  "source": method.json()["id"]})  # fmt: skip
    assert made.status_code == 200, made.text
    return made.json()["id"]


async def _stripe(world: World, path: str) -> dict[str, dict]:
    """Every object of a Stripe list, read directly, by id."""
    out, params = {}, {"limit": 100}
    while True:
        page = (await world.crm.get(path, params=params)).json()
        out |= {o["id"]: o for o in page["data"]}
        if not page["has_more"]:
            return out
        params["starting_after"] = page["data"][-1]["id"]


async def test_customers_and_charges_sync_both_ways(world):
    status = await world.sync()
    assert status["last_run"]["outcome"] == "succeeded", status
    customers = await world.records("customers")
    assert set(customers) == set(await _stripe(world, "/v1/customers")) and len(customers) == 5
    assert set(await world.records("charges")) == set(await _stripe(world, "/v1/charges"))
    some = next(iter(customers.values()))
    assert some["metadata"] == {}  # an object, as the stream's schema says (held as JSON text)

    # a customer made on the platform, under a key Stripe does not know
    r = await world.client.patch(f"{world.base}/records/customers/made-here",
                                 json={"email": "grace@example.com", "name": "Grace"})  # fmt: skip
    assert r.status_code == 200, r.text
    await world.drained()
    in_stripe = await _stripe(world, "/v1/customers")
    [new_id] = [i for i, c in in_stripe.items() if c["email"] == "grace@example.com"]
    mine = await world.records("customers")
    assert "made-here" not in mine and mine[new_id]["name"] == "Grace"
    await world.sync()  # Stripe lists it now: still one of it
    assert set(await world.records("customers")) == set(in_stripe)

    # edits both ways: the platform's is written to Stripe, Stripe's is read by the next sync
    r = await world.client.patch(f"{world.base}/records/customers/{new_id}",
                                 json={"name": "Rear Admiral Hopper"})  # fmt: skip
    assert r.status_code == 200, r.text
    await world.drained()
    assert (await world.crm.get(f"/v1/customers/{new_id}")).json()["name"] == (
        "Rear Admiral Hopper"
    )
    other = next(i for i in in_stripe if i != new_id)
    await world.crm.post(f"/v1/customers/{other}", data={"description": "edited in Stripe"})
    await world.sync()
    assert (await world.records("customers"))[other]["description"] == "edited in Stripe"
    assert len(await _stripe(world, "/v1/customers")) == 6  # nothing created twice

    # a deletion on the platform deletes the customer in Stripe
    r = await world.client.delete(f"{world.base}/records/customers/{new_id}")
    assert r.status_code == 204, r.text
    await world.drained()
    assert (await world.crm.get(f"/v1/customers/{new_id}")).status_code == 404


async def test_new_charges_are_pulled_incrementally(world):
    await asyncio.sleep(1.1)  # the seeded charges: older than the lookback of what follows
    newest = await _charge(world.crm, 400)
    await world.sync()
    before = await world.records("charges")
    await asyncio.sleep(1.1)
    new = [await _charge(world.crm, 500 + n) for n in range(2)]
    status = await world.sync()
    assert status["last_run"]["outcome"] == "succeeded", status
    after = await world.records("charges")
    assert set(after) == set(before) | set(new)
    assert after[new[0]]["amount"] == 500
    # read again: every customer (a full read), the new charges, and those of the newest second
    # before (the one-second lookback): not the 4 older ones
    assert status["last_run"]["records_pulled"] == 5 + len(new) + len([newest]), status
