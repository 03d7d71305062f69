"""POST /api/v1/integrations/sync-offline through the real gateway, against the demo CRM: items
applied once in sequence order per client, repeats answered from the first time, gaps held, a
permanent failure completing its item without wedging the queue, a transient one stopping the
batch with Retry-After, a client's queue refused to another credential, only the allowed
operations, concurrent copies of one batch applied once, and each item audited."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import httpx
import pytest

from common.roles import Role
from tests.connector_service.rig import install_crm
from tests.support import add_key, make_tenant

URL = "/api/v1/integrations/sync-offline"


@pytest.fixture
async def world(rig, dsn, crm_slug):
    slug = crm_slug
    t = await make_tenant(dsn, role=Role.admin)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    iid = await install_crm(client, rig, slug)
    try:
        yield client, crm, iid, t
    finally:
        await crm.delete("/admin/faults")
        await client.aclose()
        await crm.aclose()


class Queue:
    """A client's queue, as the dashboard keeps one."""

    def __init__(self) -> None:
        self.client_id = "c-" + secrets.token_hex(8)
        self.seq = 0

    def item(self, method: str, path: str, body=None, **extra) -> dict:
        self.seq += 1
        return {"client_id": self.client_id, "seq": self.seq, "method": method, "path": path,
                "idempotency_key": secrets.token_hex(8), "client_ts": datetime.now(UTC).isoformat(),
                **({"body": body} if body is not None else {}), **extra}  # fmt: skip


async def contacts_with(crm: httpx.AsyncClient, email: str) -> int:
    found = (await crm.get("/v1/contacts", params={"limit": 1000})).json()["results"]
    return sum(1 for c in found if c["email"] == email)


def outcomes(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["outcome"] for r in answer.json()["results"]]


async def test_applied_once_in_order_and_repeats_answered(world) -> None:
    client, crm, iid, _ = world
    q = Queue()
    base = f"/api/v1/integrations/{iid}"
    email = f"offline-{secrets.token_hex(4)}@example.com"
    items = [
        q.item("POST", base + "/actions/create_contact", {"input": {"email": email}}),
        q.item("PATCH", base, {"config": {"page_size": 0}}),  # refused: completes, never wedges
        q.item("PATCH", base, {"sync_interval_seconds": 0}),
        q.item("POST", base + "/disable"),
        q.item("POST", base + "/actions/create_contact", {"input": {"email": "x" + email}}),
        q.item("POST", base + "/enable"),
    ]
    r = await client.post(URL, json={"items": items})
    assert outcomes(r) == ["applied", "rejected", "applied", "applied", "rejected", "applied"]
    results = r.json()["results"]
    assert results[1]["status"] == 422 and results[1]["answer"]["code"]
    assert results[4]["status"] == 409  # an action on a disabled install, run in order
    assert results[0]["answer"]["output"]["email"] == email
    assert "retry-after" not in r.headers and r.json()["retry_after"] is None
    assert await contacts_with(crm, email) == 1
    install = (await client.get(base)).json()
    assert install["sync_interval_seconds"] == 0 and install["status"] in ("pending", "active")
    # the same batch again (a client that never heard the answer): nothing runs twice
    again = await client.post(URL, json={"items": items})
    assert outcomes(again) == ["duplicate"] * 6
    assert [x["answer"] for x in again.json()["results"]] == [x["answer"] for x in results]
    assert await contacts_with(crm, email) == 1
    # each completed item is audited as offline, with the client's time
    entries = (await client.get("/api/v1/audit-logs", params={
        "action": "offline.replayed", "target": f"offline_client:{q.client_id}"})).json()["items"]  # fmt: skip
    assert sorted(e["payload"]["seq"] for e in entries) == [1, 2, 3, 4, 5, 6]
    first = next(e for e in entries if e["payload"]["seq"] == 1)
    assert first["payload"]["client_ts"] == items[0]["client_ts"]
    assert first["payload"]["outcome"] == "applied" and first["actor"].startswith("apikey:")


async def test_out_of_order_gaps_and_other_credentials(world, dsn) -> None:
    client, _, iid, t = world
    q = Queue()
    base = f"/api/v1/integrations/{iid}"
    one, two, three = (q.item("POST", base + "/check") for _ in range(3))
    # two arrives first: held until one comes
    r = await client.post(URL, json={"items": [two]})
    assert outcomes(r) == ["out_of_sequence"] and r.json()["results"][0]["expected_seq"] == 1
    # delivered out of order in one batch: run in sequence order, answered in the batch's order
    r = await client.post(URL, json={"items": [three, one, two]})
    assert outcomes(r) == ["applied", "applied", "applied"]
    # the queue is this key's: another key of the tenant (or a person) may not replay it
    other = await add_key(dsn, t, Role.admin)
    r = await client.post(URL, json={"items": [q.item("POST", base + "/check")]},
                          headers=other.headers)  # fmt: skip
    assert outcomes(r) == ["rejected"]
    assert r.json()["results"][0]["answer"]["code"] == "offline_client_not_yours"
    # only the operations that may be queued: never credentials
    r = await client.post(URL, json={"items": [
        q.item("PUT", base + "/credentials", {"credentials": {"api_key": "x"}})]})  # fmt: skip
    assert outcomes(r) == ["out_of_sequence"]  # the refused item above never got its number
    q.seq -= 2
    r = await client.post(URL, json={"items": [
        q.item("PUT", base + "/credentials", {"credentials": {"api_key": "x"}})]})  # fmt: skip
    assert outcomes(r) == ["rejected"]
    assert r.json()["results"][0]["answer"]["code"] == "offline_operation_not_allowed"
    # a malformed batch changes nothing
    for bad in ({"items": []}, {"items": [{**one, "client_id": "short"}]},
                {"items": [{**one, "method": "GET"}]}):  # fmt: skip
        r = await client.post(URL, json=bad)
        assert r.status_code == 422, r.text


async def test_a_transient_failure_stops_the_batch_and_loses_nothing(world) -> None:
    client, crm, iid, _ = world
    q = Queue()
    base = f"/api/v1/integrations/{iid}"
    email = f"later-{secrets.token_hex(4)}@example.com"
    items = [
        q.item("POST", base + "/check"),
        q.item("POST", base + "/actions/create_contact", {"input": {"email": email}}),
        q.item("POST", base + "/check"),
    ]
    await crm.post("/admin/faults", json={"status": 503, "count": 50, "paths": ["/v1/contacts"],
                                          "methods": ["POST"]})  # fmt: skip
    r = await client.post(URL, json={"items": items})
    assert outcomes(r) == ["applied", "retry_later", "not_attempted"]
    assert int(r.headers["retry-after"]) >= 1 and r.json()["retry_after"] >= 1
    await crm.delete("/admin/faults")
    r = await client.post(URL, json={"items": items})
    assert outcomes(r) == ["duplicate", "applied", "applied"]
    assert await contacts_with(crm, email) == 1


async def test_the_same_batch_twice_at_once_runs_once(world) -> None:
    client, crm, iid, _ = world
    q = Queue()
    base = f"/api/v1/integrations/{iid}"
    emails = [f"twice-{secrets.token_hex(4)}@example.com" for _ in range(5)]
    items = [q.item("POST", base + "/actions/create_contact", {"input": {"email": e}})
             for e in emails]  # fmt: skip
    answers = await asyncio.gather(*(client.post(URL, json={"items": items}) for _ in range(2)))
    seen = [outcomes(a) for a in answers]
    done = {"applied", "duplicate"}
    for _ in range(10):  # whichever stopped (retry_later) sends the rest again, as a client does
        if set(seen[-1]) <= done:
            break
        seen.append(outcomes(await client.post(URL, json={"items": items})))
    assert set(seen[-1]) <= done, seen
    # each item applied by exactly one of the requests, and every other answer a repeat
    assert all(sum(run[n] == "applied" for run in seen) == 1 for n in range(5)), seen
    for email in emails:
        assert await contacts_with(crm, email) == 1, seen


async def test_a_stale_precondition_is_a_conflict_with_the_current_state(world) -> None:
    client, _, iid, _ = world
    q = Queue()
    base = f"/api/v1/integrations/{iid}"
    seen = (await client.get(base)).headers["etag"]  # what the person saw before going offline
    r = await client.patch(base, json={"sync_interval_seconds": 900})  # someone else, meanwhile
    assert r.status_code == 200 and r.headers["etag"] != seen
    items = [
        q.item("PATCH", base, {"sync_interval_seconds": 120}, if_match=seen),
        q.item("POST", base + "/check"),  # the queue goes on after a conflict
    ]
    r = await client.post(URL, json={"items": items})
    assert outcomes(r) == ["conflict", "applied"]
    conflict = r.json()["results"][0]
    assert conflict["status"] == 412 and conflict["answer"]["code"] == "precondition_failed"
    assert conflict["answer"]["current"]["sync_interval_seconds"] == 900
    assert (await client.get(base)).json()["sync_interval_seconds"] == 900
    # edited with the current ETag and sent again as a new item, it applies
    current = conflict["answer"]["current"]["etag"]
    r = await client.post(URL, json={"items": [
        q.item("PATCH", base, {"sync_interval_seconds": 120}, if_match=current)]})  # fmt: skip
    assert outcomes(r) == ["applied"]
    assert (await client.get(base)).json()["sync_interval_seconds"] == 120


async def test_a_clients_answers_are_its_own(world, dsn) -> None:
    client, _, iid, t = world
    base = f"/api/v1/integrations/{iid}"
    mine, theirs = Queue(), Queue()
    kept = mine.item("POST", base + "/check")
    r = await client.post(URL, json={"items": [kept]})
    assert outcomes(r) == ["applied"] and r.json()["results"][0]["answer"]
    other = await add_key(dsn, t, Role.admin)
    first = theirs.item("POST", base + "/check")
    r = await client.post(URL, json={"items": [first]}, headers=other.headers)
    assert outcomes(r) == ["applied"]
    # a number of theirs already completed, naming my key: no answer of mine comes back
    probe = {**first, "idempotency_key": kept["idempotency_key"]}
    r = await client.post(URL, json={"items": [probe]}, headers=other.headers)
    assert outcomes(r) == ["duplicate"] and r.json()["results"][0]["answer"] is None
