"""Calling connectors through the ConnectorManager: checks and the status lifecycle, actions
under Idempotency-Key, retries, the circuit breaker, metrics and the allowed-address rule.

Real processes throughout: the suite (with a quick breaker), the demo CRM, the SDK's example
connector in front of it, and a connector that fails when told to (flaky_connector.py)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from common.roles import Role
from tests.connector_service.rig import (
    OPEN_SECONDS,
    THRESHOLD,
    fetch,
    get_url,
    install_crm,
    register,
    start_flaky,
    wait_status,
)
from tests.support import free_port, make_tenant


async def test_check_moves_an_install_to_active_or_error(rig, dsn):
    slug = await register(dsn, rig.crm_connector.url)
    t = await make_tenant(dsn, role=Role.editor)
    config = {"base_url": rig.crm.url}
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        r = await client.post(
            "/api/v1/integrations",
            json={"connector": slug, "config": config, "credentials": {"api_key": rig.crm_key}},
        )
        assert r.status_code == 201, r.text
        good = r.json()
        assert good["status"] == "pending" and good["circuit"]["state"] == "closed"
        item = await wait_status(client, good["id"], "active", "error")
        assert item["status"] == "active", item
        assert item["status_reason"] == "check passed"

        # wrong credentials: the CRM refuses them, the install says so (and never the key)
        r = await client.post(
            "/api/v1/integrations",
            json={
                "connector": slug,
                "config": config,
                "credentials": {"api_key": "not-the-key-123"},
            },
        )
        bad = await wait_status(client, r.json()["id"], "active", "error")
        assert bad["status"] == "error", bad
        assert bad["status_reason"].startswith("credentials refused")
        assert bad["last_error"] and "not-the-key" not in str(bad)
        # fixing the credentials checks again: active
        r = await client.put(f"/api/v1/integrations/{bad['id']}/credentials",
                             json={"credentials": {"api_key": rig.crm_key}})  # fmt: skip
        assert r.status_code == 200
        assert (await wait_status(client, bad["id"], "active"))["status"] == "active"

        # a disabled install is not called; enabling it checks it again
        await client.post(f"/api/v1/integrations/{good['id']}/disable")
        r = await client.post(f"/api/v1/integrations/{good['id']}/check")
        assert r.status_code == 409 and r.json()["code"] == "integration_disabled"
        r = await client.post(f"/api/v1/integrations/{good['id']}/enable")
        assert r.json()["status"] == "pending"
        assert (await wait_status(client, good["id"], "active"))["status"] == "active"
        # an explicit check answers with the outcome
        r = await client.post(f"/api/v1/integrations/{good['id']}/check")
        assert r.status_code == 200 and r.json()["status"] == "active"

        # viewers may not run checks
        viewer = await make_tenant(dsn, role=Role.viewer)
        r = await client.post(f"/api/v1/integrations/{good['id']}/check", headers=viewer.headers)
        assert r.status_code in (403, 404)


async def test_twenty_concurrent_duplicates_run_once(rig, dsn):
    slug = await register(dsn, rig.crm_connector.url)
    t = await make_tenant(dsn, role=Role.editor)
    email = f"once-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30) as c:
        r = await c.post("/api/v1/integrations", json={
            "connector": slug, "config": {"base_url": rig.crm.url},
            "credentials": {"api_key": rig.crm_key}})  # fmt: skip
        iid = r.json()["id"]
        await wait_status(c, iid, "active")
        url = f"/api/v1/integrations/{iid}/actions/create_contact"
        body = {"input": {"email": email, "first_name": "Once"}}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        answers = await asyncio.gather(*(c.post(url, json=body, headers=key) for _ in range(20)))
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {200, 409}, [a.text for a in answers]
        firsts = [
            a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers
        ]
        assert len(firsts) == 1
        created = firsts[0].json()["output"]
        for a in answers:
            if a.status_code == 409:
                assert a.json()["code"] == "idempotency_in_progress"
                assert a.headers["retry-after"] == "1"
        # a repeat after it finished replays the stored answer
        again = await c.post(url, json=body, headers=key)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["output"] == created
        # the same key with another body is refused, and runs nothing
        other = await c.post(url, json={"input": {"email": "x" + email}}, headers=key)
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
        # no key, or a bad one
        r = await c.post(url, json=body)
        assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
        r = await c.post(url, json=body, headers={"Idempotency-Key": "has space"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_idempotency_key"
        # an action the connector does not have
        r = await c.post(f"/api/v1/integrations/{iid}/actions/nope", json=body, headers=key)
        assert r.status_code == 404 and r.json()["code"] == "action_not_found"

    # exactly one contact with that email exists in the CRM
    async with httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}) as crm:
        found = (await crm.get("/v1/contacts", params={"limit": 1000})).json()["results"]
    assert [x["email"] for x in found].count(email) == 1
    rows = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.action_called'", t.tenant_id)  # fmt: skip
    assert len(rows) == 1 and rows[0]["payload"]["outcome"] == "ok"


async def test_keys_are_scoped_per_tenant_and_refusals_replayed(rig, dsn):
    name = f"flaky-{secrets.token_hex(3)}"
    flaky = start_flaky(name, rig.logs)
    try:
        slug = await register(dsn, flaky.url)
        key = {"Idempotency-Key": "shared-key-1"}
        outputs = []
        for _ in range(2):
            t = await make_tenant(dsn, role=Role.editor)
            async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as c:
                iid = (await c.post("/api/v1/integrations", json={"connector": slug})).json()["id"]
                url = f"/api/v1/integrations/{iid}/actions/count"
                r = await c.post(url, json={"input": {"tag": "scoped"}}, headers=key)
                assert r.status_code == 200, r.text
                outputs.append(r.json()["output"]["calls"])
                # a permanent refusal is final: stored and replayed, not run again
                refuse = {"input": {"tag": "refuse", "refuse": True}}
                k2 = {"Idempotency-Key": f"refuse-{iid}"}
                first = await c.post(url, json=refuse, headers=k2)
                assert first.status_code == 422 and first.json()["code"] == "connector_rejected"
                again = await c.post(url, json=refuse, headers=k2)
                assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
        assert outputs == [1, 2]  # the second tenant's identical key ran its own call
        calls = await get_url(flaky.url + "/calls")
        assert calls["refuse"] == 2  # once per tenant
    finally:
        flaky.stop()


async def test_retries_only_where_safe(rig, dsn):
    """A retryable failure is retried for an action with a key; without one it is not."""
    name = f"flaky-{secrets.token_hex(3)}"
    flaky = start_flaky(name, rig.logs)
    try:
        slug = await register(dsn, flaky.url)
        t = await make_tenant(dsn, role=Role.editor)
        async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as c:
            iid = (await c.post("/api/v1/integrations", json={"connector": slug})).json()["id"]
            url = f"/api/v1/integrations/{iid}/actions/count"
            r = await c.post(url, json={"input": {"tag": "twice", "fail_times": 2}},
                             headers={"Idempotency-Key": "k-retry"})  # fmt: skip
            assert r.status_code == 200 and r.json()["output"] == {"calls": 3}
            # more failures than attempts: 503, and the key is free again for a later retry
            body = {"input": {"tag": "many", "fail_times": 4}}
            r = await c.post(url, json=body, headers={"Idempotency-Key": "k-many"})
            assert r.status_code == 503 and r.json()["code"] == "connector_failed"
            r = await c.post(url, json=body, headers={"Idempotency-Key": "k-many"})
            assert r.status_code == 200 and r.json()["output"] == {"calls": 5}
            # a connector slower than the call's budget: 504 within it
            started = time.monotonic()
            r = await c.post(url, json={"input": {"tag": "slow", "sleep": 6}},
                             headers={"Idempotency-Key": "k-slow"})  # fmt: skip
            assert r.status_code == 504 and r.json()["code"] == "connector_timeout"
            assert time.monotonic() - started < 3 + 2  # the budget, plus the trip through

        # the manager without a key does not retry (in process, against the same connector)
        from connector_service.manager import errors
        from connector_service.manager.breaker import Breakers
        from connector_service.manager.manager import ConnectorManager, Target, Timeouts
        from connector_service.manager.recorder import Recorder

        manager = ConnectorManager(
            policy=_policy(), breakers=Breakers(threshold=100, open_seconds=1),
            recorder=Recorder(None, flush_seconds=1, batch_size=10, max_queued=100),  # type: ignore[arg-type]
            credentials=_no_credentials, timeouts=Timeouts(connect=1, check=5, call=5, sync=5),
            max_attempts=3,
        )  # fmt: skip
        target = Target(id=uuid.uuid4(), tenant_id=uuid.uuid4(), connector_name=name,
                        service_name=name, status="active", config={}, endpoint_url=flaky.url)  # fmt: skip
        try:
            with pytest.raises(errors.ConnectorRetryable):
                await manager.action(target, "count", {"tag": "unsafe", "fail_times": 1},
                                     idempotency_key=None)  # fmt: skip
            out = await manager.action(target, "count", {"tag": "safe", "fail_times": 1},
                                       idempotency_key="k")  # fmt: skip
            assert out == {"output": {"calls": 2}}
        finally:
            await manager.aclose()
        assert (await get_url(flaky.url + "/calls"))["unsafe"] == 1
    finally:
        flaky.stop()


def _policy():
    from common.endpoints import EndpointPolicy, parse_networks

    return EndpointPolicy(parse_networks("127.0.0.0/8"))


async def _no_credentials(_target, _force: bool) -> dict[str, str]:
    return {}


async def test_circuit_opens_on_a_failing_connector_and_recovers(rig, dsn):
    name = f"flaky-{secrets.token_hex(3)}"
    port = free_port()
    flaky = start_flaky(name, rig.logs, port=port)
    slug = await register(dsn, flaky.url)
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as c:
        iid = (await c.post("/api/v1/integrations", json={"connector": slug})).json()["id"]
        assert (await wait_status(c, iid, "active"))["status"] == "active"
        flaky.stop()
        check = f"/api/v1/integrations/{iid}/check"
        for _ in range(THRESHOLD):
            item = (await c.post(check)).json()
            assert item["status"] == "error"
        item = (await c.get(f"/api/v1/integrations/{iid}")).json()
        assert item["circuit"]["state"] == "open", item
        assert item["circuit"]["consecutive_failures"] == THRESHOLD
        assert item["status_reason"].startswith("circuit open"), item
        # while open, calls are refused at once without reaching for the connector
        r = await c.post(check)
        assert r.status_code == 503 and r.json()["code"] == "circuit_open"
        assert int(r.headers["retry-after"]) >= 1

        flaky = start_flaky(name, rig.logs, port=port)  # the connector is back
        try:
            await asyncio.sleep(OPEN_SECONDS + 0.2)
            r = await c.post(check)  # the half-open probe
            assert r.status_code == 200 and r.json()["status"] == "active", r.text
            assert r.json()["circuit"]["state"] == "closed"
        finally:
            flaky.stop()

    metrics = await get_url(rig.suite.connector_service + "/metrics", text=True)
    assert (
        f'seedos_connector_call_errors_total{{error_class="transport",operation="check",service="{slug}"}}'
        in metrics
    )
    assert (
        f'seedos_connector_call_errors_total{{error_class="circuit_open",operation="check",service="{slug}"}}'
        in metrics
    )
    assert "tenant" not in metrics.split("seedos_connector_call_duration_seconds")[1][:2000]
    # per-call rows reach connector_metrics in batches, off the request path
    deadline = time.monotonic() + 5
    while True:
        rows = await fetch(dsn, "SELECT metric_type, labels FROM connector_metrics"
                            " WHERE connector_id = $1", uuid.UUID(iid))  # fmt: skip
        kinds = {(r["metric_type"], r["labels"]["outcome"]) for r in rows}
        if ("error", "transport") in kinds or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert ("latency_ms", "ok") in kinds and ("error", "transport") in kinds


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://169.254.169.254/latest", "host '169.254.169.254' is outside the connector"),
        ("http://0xa9fea9fe/latest", "host '0xa9fea9fe' is outside the connector"),
        ("{crm}/#", "fragment"),  # stored before publishing refused it: still never called
        ("{crm}/?", "query"),
    ],
)
async def test_disallowed_endpoints_are_refused(rig, dsn, endpoint, why):
    endpoint = endpoint.format(crm=rig.crm_connector.url)
    slug = await register(dsn, rig.crm_connector.url, endpoint=endpoint)
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as c:
        iid, item = await _install_failing(c, rig, slug)
        assert item["status"] == "error" and item["status_reason"].startswith(
            "endpoint not allowed"
        ), item
        assert why in item["status_reason"] and "169.254.169.254" not in item["last_error"].replace(
            "'169.254.169.254'", ""
        )  # the host as written, never an address it stands for
        r = await c.post(f"/api/v1/integrations/{iid}/actions/create_contact",
                         json={"input": {"email": "a@example.com"}},
                         headers={"Idempotency-Key": "k1"})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "endpoint_not_allowed"


async def _install_failing(c: httpx.AsyncClient, rig, slug: str) -> tuple[str, dict]:
    """Install ``slug`` for the demo CRM; its id and the install once its check put it in
    error."""
    iid = await install_crm(c, rig, slug)
    return iid, await wait_status(c, iid, "error")


class _NotAConnector(BaseHTTPRequestHandler):
    """Some other HTTP service on the connector networks (an admin API, a database's HTTP
    port): it answers every request with ``answer`` (status, content type, body)."""

    answer: tuple[int, str, bytes] = (500, "application/json", b"{}")

    def do_POST(self) -> None:
        status, ctype, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_an_endpoint_that_is_not_a_connector_shows_nothing_of_its_answers(rig, dsn):
    """The API must not read internal services for whoever publishes an endpoint URL: the
    install's status and the problems of its calls give the classification and the status
    code, never the answer's body, whatever it calls its fields."""
    banner = b'{"detail": "redis_version:7.2.4 os:Linux", "title": "secret-banner", "errors":' \
             b' [{"path": "/", "message": "secret-banner"}], "code": "secret_banner"}'  # fmt: skip
    _NotAConnector.answer = (500, "application/json", banner)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAConnector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        slug = await register(dsn, rig.crm_connector.url, endpoint=url)
        t = await make_tenant(dsn, role=Role.editor)
        async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as c:
            iid, item = await _install_failing(c, rig, slug)
            assert item["status_reason"] == f"connector failed: {slug}: answered HTTP 500", item
            assert item["last_error"] == f"{slug}: answered HTTP 500"
            assert "banner" not in str(item) and "redis" not in str(item)

            _NotAConnector.answer = (422, "application/problem+json", banner)  # no category
            item = (await c.post(f"/api/v1/integrations/{iid}/check")).json()
            assert item["status_reason"] == f"check failed: {slug}: answered HTTP 422", item
            r = await c.post(f"/api/v1/integrations/{iid}/actions/create_contact",
                             json={"input": {"email": "a@example.com"}},
                             headers={"Idempotency-Key": "k1"})  # fmt: skip
            assert r.status_code == 422 and r.json()["code"] == "connector_rejected", r.text
            assert r.json()["detail"] == f"{slug}: answered HTTP 422"
            assert "banner" not in r.text and "redis" not in r.text
    finally:
        server.shutdown()
        server.server_close()
