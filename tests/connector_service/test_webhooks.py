"""Webhooks from providers, end to end through the gateway's public path: each install's URL and
secret; Stripe's own signed events sent by localstripe (a fake Stripe no one here wrote) applied
to the synced records at once (created, updated, deleted); GitHub's deliveries signed by the test
as GitHub signs them, their payloads checked against GitHub's webhook descriptions
(@octokit/openapi-webhooks); and every refusal (a bad signature, a stale or replayed delivery, an
oversized body, an unknown URL) answered, changing nothing, and shown to the tenant; a burst of
events that name a stream coalesced into a pull or two."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

import httpx
import jsonschema
import pytest

from common.roles import Role
from connector_service.webhooks.schemes import sign
from marketplace_service.catalog.definitions import DEFINITIONS
from seedos_sdk.testing.localstripe import KEY
from tests.catalog import descriptions
from tests.connector_service.rig import fetch, generic_connector, register, wait_status
from tests.support import make_tenant

SECRET = "whsec_" + "a1" * 16


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    with generic_connector(tmp_path_factory.mktemp("generic"), DEFINITIONS) as url_of:
        yield url_of


@pytest.fixture
async def hooks():
    """A provider's side: no API key, no cookie."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _install(rig, dsn, endpoint: str, config: dict, credentials: dict):
    slug = await register(dsn, endpoint)
    t = await make_tenant(dsn, role=Role.editor)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    r = await client.post("/api/v1/integrations", json={
        "connector": slug, "config": config, "credentials": credentials})  # fmt: skip
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await client.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    assert r.status_code == 200, r.text
    await wait_status(client, iid, "active", "error")
    return client, iid


async def _records(client, iid, stream):
    page = (await client.get(f"/api/v1/integrations/{iid}/records",
                             params={"stream": stream, "limit": 200})).json()  # fmt: skip
    return {r["id"]: r for r in page["items"]}


async def _eventually(check, within: float = 15):
    deadline = time.monotonic() + within
    while True:
        try:
            found = await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        return found


async def test_stripes_own_events_reach_the_records_at_once(rig, dsn, stripe_url, generic):
    client, iid = await _install(rig, dsn, generic("stripe"), {"base_url": stripe_url},
                                 {"api_key": KEY})  # fmt: skip
    base = f"/api/v1/integrations/{iid}/webhook"
    assert (await client.get(base)).json()["url"] is None  # none until asked for
    made = await client.post(base)
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert url.startswith(rig.suite.gateway + "/api/v1/integrations/webhooks/")
    r = await client.put(base + "/secret", json={"secret": SECRET})
    assert r.status_code == 200 and "secret" not in r.json(), r.text
    shown = (await client.get(base)).json()
    assert shown["supported"] and shown["url"] == url and shown["secret_set"], shown
    assert shown["scheme"] == "stripe" and SECRET not in json.dumps(shown)
    assert {"types": ["invoice.paid"], "stream": None, "carries_record": False,
            "pull": "charges"} in shown["events"]  # fmt: skip

    stripe = httpx.AsyncClient(base_url=stripe_url, headers={"Authorization": f"Bearer {KEY}"})
    hook = f"seedos-{secrets.token_hex(4)}"
    r = await stripe.post(f"/_config/webhooks/{hook}", data={
        "url": url, "secret": SECRET, "events[0]": "customer.created",
        "events[1]": "customer.updated", "events[2]": "customer.deleted"})  # fmt: skip
    assert r.status_code == 200, r.text
    try:
        made = (await stripe.post("/v1/customers", data={"email": "ada@example.com",
                                                         "name": "Ada"})).json()  # fmt: skip

        async def arrived():
            mine = await _records(client, iid, "customers")
            assert made["id"] in mine
            return mine[made["id"]]

        assert (await _eventually(arrived))["email"] == "ada@example.com"  # no sync ran
        await stripe.post(f"/v1/customers/{made['id']}", data={"name": "Ada Lovelace"})

        async def renamed():
            mine = await _records(client, iid, "customers")
            assert mine[made["id"]]["name"] == "Ada Lovelace"

        await _eventually(renamed)
        await stripe.delete(f"/v1/customers/{made['id']}")

        async def gone():
            assert made["id"] not in await _records(client, iid, "customers")

        await _eventually(gone)
    finally:
        await stripe.post(f"/_config/webhooks/{hook}", data={
            "url": "http://127.0.0.1:9/", "secret": "unused-secret", "events[0]": "none"})  # fmt: skip
        await stripe.aclose()
    runs = (await client.get(f"/api/v1/integrations/{iid}/sync/runs")).json()["items"]
    assert runs == []  # the records came by webhook alone
    summary = (await client.get(base)).json()
    assert summary["taken_24h"] >= 3 and summary["refused_24h"] == 0, summary
    await client.aclose()


def _github_payload(described: dict, number: int, title: str) -> dict:
    """An issues.opened payload as GitHub sends it: the repository and sender of GitHub's own
    example delivery (check_run.completed), and an issue with every field GitHub's description
    of the event requires (the test checks it against that description before sending it)."""
    example = described["components"]["examples"]["check-run-completed"]["value"]
    repository, sender = example["repository"], example["sender"]
    api = f"https://api.github.com/repos/{repository['full_name']}/issues/{number}"
    reactions = {"url": api + "/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
                 "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0}  # fmt: skip
    issue = {
        "id": 1000 + number, "node_id": "I_kwDOA" + str(number), "number": number,
        "title": title, "state": "open", "body": "From a webhook", "user": sender,
        "labels": [], "assignee": None, "assignees": [], "milestone": None, "comments": 0,
        "locked": False, "active_lock_reason": None, "author_association": "OWNER",
        "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z",
        "closed_at": None, "url": api, "repository_url": repository["url"],
        "labels_url": api + "/labels{/name}", "comments_url": api + "/comments",
        "events_url": api + "/events", "html_url": f"{repository['html_url']}/issues/{number}",
        "reactions": reactions,
    }  # fmt: skip
    return {"action": "opened", "issue": issue, "repository": repository, "sender": sender}


async def test_github_deliveries_and_every_refusal(rig, dsn, generic, hooks):
    client, iid = await _install(rig, dsn, generic("github"),
                                 {"base_url": "http://127.0.0.1:9", "owner": "octocat",
                                  "repo": "hello"}, {})  # fmt: skip
    base = f"/api/v1/integrations/{iid}/webhook"
    url = (await client.post(base)).json()["url"]
    made = await client.put(base + "/secret", json={"generate": True})
    secret = made.json()["secret"]  # made here, shown this once, for GitHub's form
    assert len(secret) >= 32 and secret not in json.dumps((await client.get(base)).json())

    async def deliver(event: str, payload: dict, *, key: str = secret, delivery=None,
                      body: bytes | None = None):  # fmt: skip
        raw = body if body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                   **sign("github", key, raw, now=time.time())}  # fmt: skip
        return await hooks.post(url, content=raw, headers=headers)

    # GitHub's own example of its ping event, and a payload its issues.opened schema takes
    described = descriptions.load("octokit-openapi-webhooks",
                                  "package/generated/api.github.com.json")  # fmt: skip
    ping = described["components"]["examples"]["ping"]["value"]
    r = await deliver("ping", ping)
    assert r.status_code == 200 and r.json()["records"] == 0, r.text  # taken, nothing to apply
    payload = _github_payload(described, 42, "Found by a webhook")
    _validate(described, "webhook-issues-opened", payload)
    delivery = str(uuid.uuid4())
    r = await deliver("issues", payload, delivery=delivery)
    assert r.status_code == 200 and r.json() == {"taken": True, "delivery": delivery,
                                                 "event": "issues", "records": 1,
                                                 "pulls": []}, r.text  # fmt: skip
    # keyed by the issue's number, the stream's primary key
    page = (await client.get(f"/api/v1/integrations/{iid}/records/issues/42")).json()
    assert page["title"] == "Found by a webhook" and page["state"] == "open", page

    # refusals: none changes anything, each is answered and shown
    changed = _github_payload(described, 42, "Changed by a forger")
    r = await deliver("issues", changed, key="not-the-secret")
    assert r.status_code == 401 and r.json()["code"] == "webhook_bad_signature", r.text
    r = await deliver("issues", changed, delivery=delivery)  # GitHub's id again: a replay
    assert r.status_code == 200 and r.json()["taken"] is False, r.text
    assert r.json()["reason"] == "replayed"
    assert await _status_of_a_body_declared(url, 1024 * 1024 + 1) == 413  # refused from its headers
    r = await hooks.post(url[:-4] + "AAAA", content=b"{}", headers={"X-GitHub-Event": "ping"})
    assert r.status_code == 404 and r.json()["code"] == "webhook_unknown_url", r.text
    r = await deliver("issues", {}, body=b"not json")
    assert r.status_code == 400 and r.json()["code"] == "webhook_not_json", r.text
    page = (await client.get(f"/api/v1/integrations/{iid}/records/issues/42")).json()
    assert page["title"] == "Found by a webhook"  # unchanged by any of them
    shown = (await client.get(base)).json()
    reasons = [x["reason"] for x in shown["recent_refusals"]]
    assert {"bad_signature", "replayed", "not_json"} <= set(reasons), reasons
    assert shown["refused_24h"] >= 3 and secret not in json.dumps(shown)

    # a new URL: the old one stops at once
    new_url = (await client.post(base, params={"rotate": "true"})).json()["url"]
    assert new_url != url
    r = await deliver("issues", payload)
    assert r.status_code == 404, r.text
    await client.aclose()


async def _status_of_a_body_declared(url: str, length: int) -> int:
    """The status a POST to ``url`` declaring a body of ``length`` bytes is answered with
    before any of it is sent (what the gateway does with an oversized delivery)."""
    parts = httpx.URL(url)
    reader, writer = await asyncio.open_connection(parts.host, parts.port)
    try:
        writer.write(f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
                     .encode())  # fmt: skip
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()


def _validate(described: dict, name: str, payload: dict) -> None:
    """``payload`` against the description's schema ``name`` (its $refs into the description's
    own components resolved)."""
    schema = {**described["components"]["schemas"][name], "components": described["components"]}
    jsonschema.Draft202012Validator(schema).validate(payload)


async def test_a_burst_of_events_naming_a_stream_is_one_pull_or_two(
    rig, dsn, stripe_url, generic, hooks
):
    client, iid = await _install(rig, dsn, generic("stripe"), {"base_url": stripe_url},
                                 {"api_key": KEY})  # fmt: skip
    base = f"/api/v1/integrations/{iid}/webhook"
    url = (await client.post(base)).json()["url"]
    await client.put(base + "/secret", json={"secret": SECRET})

    async def invoice_paid(n: int) -> httpx.Response:
        raw = json.dumps({"id": f"evt_burst_{n}_{secrets.token_hex(4)}", "type": "invoice.paid",
                          "data": {"object": {"id": f"in_{n}"}}}).encode()  # fmt: skip
        return await hooks.post(url, content=raw, headers={
            "Content-Type": "application/json", **sign("stripe", SECRET, raw, now=time.time())})  # fmt: skip

    began = time.monotonic()
    answers = await asyncio.gather(*(invoice_paid(n) for n in range(100)))
    assert all(a.status_code == 200 and a.json()["pulls"] == ["charges"] for a in answers)
    assert time.monotonic() - began < 10

    async def pulled():
        rows = await fetch(dsn, "SELECT outcome FROM sync_runs WHERE integration_id = $1"
                                " AND kind = 'webhook'", uuid.UUID(iid))  # fmt: skip
        assert rows and all(r["outcome"] != "running" for r in rows)
        return rows

    runs = await _eventually(pulled)
    assert 1 <= len(runs) <= 3, len(runs)  # 100 events, a pull or two

    # a stale signature (Stripe's: signed more than 5 minutes ago) is refused
    raw = json.dumps({"id": "evt_old", "type": "invoice.paid", "data": {"object": {}}}).encode()
    r = await hooks.post(url, content=raw, headers={
        "Content-Type": "application/json",
        **sign("stripe", SECRET, raw, now=time.time() - 600)})  # fmt: skip
    assert r.status_code == 401 and r.json()["code"] == "webhook_stale", r.text
    await client.aclose()


async def test_slacks_url_verification_is_answered_with_its_challenge(rig, dsn, generic):
    """Slack checks a Request URL once, with a signed url_verification request: the answer is
    its challenge (and an unsigned one is refused like any delivery)."""
    client, iid = await _install(rig, dsn, generic("slack"), {"channel_id": "C0123456789"}, {})
    base = f"/api/v1/integrations/{iid}/webhook"
    url = (await client.post(base)).json()["url"]
    signing = "8f742231b10e8888abcd99yyyzzz85a5"
    assert (await client.put(base + "/secret", json={"secret": signing})).status_code == 200
    raw = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                      "type": "url_verification"}).encode()  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as slack:
        r = await slack.post(url, content=raw, headers={
            "Content-Type": "application/json", **sign("slack", signing, raw, now=time.time())})  # fmt: skip
        assert r.status_code == 200 and r.json() == {
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}, r.text  # fmt: skip
        r = await slack.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 401, r.text
    await client.aclose()
