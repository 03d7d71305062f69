"""Outbound webhooks end to end through the gateway, delivered by connector_service (a real
process) to a receiver on loopback and verified with the `standardwebhooks` package: signed,
logged with the answer's first KiB, redelivered with the same webhook-id after an outage and
after connector_service is killed and restarted, signed with both secrets during a rotation's
grace, replayed, disabled after failing for the configured time (audited, an event and an email
to the admins who did not opt out); and the bad input refused with problem+json."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from standardwebhooks import Webhook

from common.roles import Role
from connector_service.outbound import events
from seedos_cli.supervisor import SERVICES
from tests.conftest import Suite, start_suite
from tests.connector_service.outbound_rig import (
    DISABLE_AFTER_SECONDS,
    Receiver,
    Smtp,
    outbound_env,
    receiver,
    start_smtp,
)
from tests.people import audit_of, person
from tests.support import add_key, connected, make_tenant


@pytest.fixture(scope="module")
def smtp() -> Iterator[Smtp]:
    served = start_smtp()
    try:
        yield served
    finally:
        served.controller.stop()


@pytest.fixture(scope="module")
def stack(dsn: str, smtp: Smtp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    running = start_suite(
        dsn, tmp_path_factory.mktemp("outbound") / "services.log", **outbound_env(smtp.port)
    )
    try:
        yield running
    finally:
        running.supervisor.stop()


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r


@pytest.fixture
async def admin(stack: Suite) -> AsyncIterator[httpx.AsyncClient]:
    t = await make_tenant(stack_dsn(stack), role=Role.admin)
    async with httpx.AsyncClient(base_url=stack.gateway, headers=t.headers, timeout=30) as c:
        c.tenant = t  # type: ignore[attr-defined]
        yield c


def stack_dsn(stack: Suite) -> str:
    return stack.supervisor.env["DATABASE_URL"]


async def _endpoint(client: httpx.AsyncClient, url: str, types: list[str] | None = None) -> dict:
    r = await client.post("/api/v1/webhooks", json={
        "url": url, "event_types": types or [events.SYNC_FINISHED], "description": "test"})  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    return body


async def _deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict]:
    r = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries")
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _until(check, within: float = 15):
    deadline = time.monotonic() + within
    while not (found := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
    return found


async def test_a_test_event_is_delivered_signed_and_logged(admin, hook):
    ep = await _endpoint(admin, hook.url)
    r = await admin.post(f"/api/v1/webhooks/{ep['id']}/test")
    assert r.status_code == 202, r.text
    queued = r.json()
    got = (await hook.wait_for(lambda g: g))[0]
    payload = Webhook(ep["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "webhook.test" and payload["data"]["endpoint_id"] == ep["id"]
    assert got.id == queued["event_id"]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)

    done = await _until(lambda: _state(admin, ep["id"], "delivered"))
    attempt = done["attempt_log"][0]
    assert attempt["ok"] and attempt["status"] == 200 and attempt["error"] is None
    assert attempt["response"].startswith("thanks") and len(attempt["response"].encode()) <= 1024
    # the secret is shown once: never in a list or a read
    assert "secret" not in (await admin.get("/api/v1/webhooks")).text.replace('"secrets"', "")
    detail = (await admin.get(f"/api/v1/webhooks/{ep['id']}")).json()
    assert "whsec_" not in str(detail) and len(detail["secrets"]) == 1


async def _state(client, endpoint_id, state):
    items = await _deliveries(client, endpoint_id)
    return items[0] if items and items[0]["state"] == state else None


async def test_redelivered_with_the_same_id_after_an_outage(admin, hook):
    ep = await _endpoint(admin, hook.url)
    hook.status = 503
    await admin.post(f"/api/v1/webhooks/{ep['id']}/test")
    await hook.wait_for(lambda g: len(g) >= 2)
    hook.status = 200
    await _until(lambda: _state(admin, ep["id"], "delivered"))
    assert len({g.id for g in hook.got}) == 1  # one message, every attempt with its id
    for g in hook.got:
        Webhook(ep["secret"]).verify(g.body, g.headers)
    assert len({g.body for g in hook.got}) == 1  # the same body every time
    log = (await _deliveries(admin, ep["id"]))[0]["attempt_log"]
    assert [a["status"] for a in log][-1] == 200 and {a["status"] for a in log[:-1]} == {503}
    assert all(a["error"] == "http_status" for a in log[:-1])


async def test_redelivered_with_the_same_id_after_connector_service_restarts(stack, admin):
    """The receiver is down (connections refused) when the event is first sent; connector_service
    is killed (SIGKILL) and started again; the delivery arrives once the receiver is back."""
    async with receiver() as first:
        url, port = first.url, first.port
    ep = await _endpoint(admin, url)
    r = await admin.post(f"/api/v1/webhooks/{ep['id']}/test")
    event_id = r.json()["event_id"]
    failed = await _until(lambda: _state(admin, ep["id"], "pending"))
    await _until(lambda: _attempted(admin, ep["id"]))
    assert failed["event_id"] == event_id

    proc = stack.supervisor.procs["connector_service"]
    proc.kill()
    proc.wait()
    back = Receiver(port)
    await back.start()
    try:
        spec = next(s for s in SERVICES if s.name == "connector_service")
        stack.supervisor.start(spec, stack.ports["connector_service"])
        await asyncio.to_thread(
            stack.supervisor.wait_ready, {"connector_service": stack.connector_service}
        )
        got = (await back.wait_for(lambda g: g, within=20))[0]
        assert got.id == event_id
        Webhook(ep["secret"]).verify(got.body, got.headers)
        done = await _until(lambda: _state(admin, ep["id"], "delivered"))
        assert done["attempt_log"][0]["error"] == "connect_error"
    finally:
        await back.stop()


async def _attempted(client, endpoint_id):
    items = await _deliveries(client, endpoint_id)
    return items and items[0]["attempt_log"]


async def test_both_secrets_sign_during_a_rotations_grace(admin, hook):
    ep = await _endpoint(admin, hook.url)
    r = await admin.post(f"/api/v1/webhooks/{ep['id']}/rotate")
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != ep["secret"] and rotated["previous_expires_at"]
    await admin.post(f"/api/v1/webhooks/{ep['id']}/test")
    got = (await hook.wait_for(lambda g: g))[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(ep["secret"]).verify(got.body, got.headers)  # a receiver not yet updated
    Webhook(rotated["secret"]).verify(got.body, got.headers)  # one already updated
    detail = (await admin.get(f"/api/v1/webhooks/{ep['id']}")).json()
    assert sorted(s["expires_at"] is None for s in detail["secrets"]) == [False, True]


async def test_a_replay_carries_the_same_id(admin, hook):
    ep = await _endpoint(admin, hook.url)
    await admin.post(f"/api/v1/webhooks/{ep['id']}/test")
    first = await _until(lambda: _state(admin, ep["id"], "delivered"))
    r = await admin.post(f"/api/v1/webhooks/{ep['id']}/deliveries/{first['id']}/replay")
    assert r.status_code == 202, r.text
    assert r.json()["event_id"] == first["event_id"]
    await hook.wait_for(lambda g: len(g) == 2)
    assert hook.got[0].id == hook.got[1].id == first["event_id"]
    Webhook(ep["secret"]).verify(hook.got[1].body, hook.got[1].headers)
    replayed = (await _deliveries(admin, ep["id"]))[0]
    assert replayed["replay_of"] == first["id"]


async def test_failing_endpoint_is_disabled_and_the_tenant_told(stack, admin, hook, smtp):
    dsn = stack_dsn(stack)
    t = admin.tenant
    mailed = await person(stack.gateway, dsn, t, "admin", email=f"a-{uuid.uuid4().hex[:6]}@ex.test")
    quiet = await person(stack.gateway, dsn, t, "admin", email=f"q-{uuid.uuid4().hex[:6]}@ex.test")
    viewer = await person(stack.gateway, dsn, t, "viewer", email=f"v-{uuid.uuid4().hex}@ex.test")
    async with httpx.AsyncClient(base_url=stack.gateway, headers=quiet.headers) as c:
        r = await c.put("/api/v1/me/notifications", json={"email": False})
        assert r.status_code == 200, r.text
        assert (await c.get("/api/v1/me/notifications")).json() == {"email": False}

    async with receiver() as listener:
        told = await _endpoint(admin, listener.url, [events.ENDPOINT_DISABLED])
        failing = await _endpoint(admin, hook.url)
        hook.status = 500
        started = time.monotonic()
        await admin.post(f"/api/v1/webhooks/{failing['id']}/test")

        async def disabled():
            body = (await admin.get(f"/api/v1/webhooks/{failing['id']}")).json()
            return body if not body["enabled"] else None

        ep = await _until(disabled, within=20)
        assert time.monotonic() - started >= DISABLE_AFTER_SECONDS
        assert ep["disabled_reason"].startswith("failing since")
        got = (await listener.wait_for(lambda g: g))[0]
        event = Webhook(told["secret"]).verify(got.body, got.headers)
        assert event["type"] == events.ENDPOINT_DISABLED
        assert event["data"]["endpoint_id"] == failing["id"]
    (entry,) = await audit_of(dsn, t.tenant_id, "webhook.endpoint_disabled")
    assert entry["target"] == f"webhook:{failing['id']}"

    def mail_to(address):
        return [m for rcpt, m in smtp.box.messages if address in rcpt]

    await _until(lambda: _true(mail_to(mailed.email)))
    (message,) = mail_to(mailed.email)
    assert "Webhook endpoint disabled" in message["Subject"]
    assert hook.url in message.get_payload()
    # the other admin opted out, a viewer is no admin: neither is mailed (the same round sent
    # the first one, so theirs would have arrived with it)
    await asyncio.sleep(0.5)
    assert not mail_to(quiet.email) and not mail_to(viewer.email)


async def _true(value):
    return value


async def test_alert_opened_is_mailed_to_admins(stack, smtp):
    dsn = stack_dsn(stack)
    t = await make_tenant(dsn)
    a = await person(stack.gateway, dsn, t, "admin", email=f"al-{uuid.uuid4().hex[:6]}@ex.test")
    async with connected(dsn) as conn, conn.transaction():
        await events.publish(conn, tenant_id=t.tenant_id, type=events.ALERT_OPENED,
                             data={"metric": "p95_latency", "connector_name": "Demo CRM"})  # fmt: skip

    async def mailed():
        return [m for rcpt, m in smtp.box.messages if a.email in rcpt]

    (message,) = await _until(mailed)
    assert message["Subject"].startswith("Alert: p95_latency of Demo CRM")


async def test_bad_input_is_refused_with_problem_json(stack, admin):
    cases = [
        {"url": "http://127.0.0.1:9/x", "event_types": ["no.such"]},
        {"url": "http://127.0.0.1:9/x", "event_types": []},
        {"url": "ftp://127.0.0.1/x", "event_types": [events.SYNC_FAILED]},
        {"url": "http://127.0.0.1:9/x", "event_types": [events.SYNC_FAILED], "extra": 1},
        {"event_types": [events.SYNC_FAILED]},
    ]
    for body in cases:
        r = await admin.post("/api/v1/webhooks", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await admin.get("/api/v1/webhooks")).json()["items"] == []
    r = await admin.get(f"/api/v1/webhooks/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["code"] == "webhook_endpoint_not_found"
    viewer = await add_key(stack_dsn(stack), admin.tenant, Role.viewer)
    async with httpx.AsyncClient(base_url=stack.gateway, headers=viewer.headers) as c:
        r = await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                                   "event_types": [events.SYNC_FAILED]})  # fmt: skip
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (await c.get("/api/v1/webhooks")).status_code == 200
