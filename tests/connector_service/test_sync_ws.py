"""Live sync over WebSocket, end to end: y-websocket (Node) and pycrdt clients through the
gateway, the JSON API beside them, two connector_service replicas on one database, tickets,
refusals before any state, and bad input closing 1008 with the document untouched.

Real processes: the suite, the demo CRM and the example connector (rig.py), and Node with the
npm packages of tests/sync_interop (``make test`` installs them)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
import httpx
import pytest
from pycrdt import Doc, Map, create_update_message, read_message, write_message

from common.db import Database
from common.internal_auth import Principal
from common.roles import Role
from connector_service.sync.document import PLATFORM
from connector_service.sync.hub import Hub, Peer
from connector_service.sync.lib0 import decode_state_vector
from connector_service.sync.store import DocStore
from seedos_sdk.testing.process import start
from tests.conftest import ROOT, suite_env
from tests.connector_service.rig import fetch, install_crm, register, wait_status
from tests.connector_service.yclient import YClient
from tests.support import add_key, make_tenant

INTEROP = ROOT / "tests" / "sync_interop"


class Live:
    def __init__(self, rig, tenant, client: httpx.AsyncClient, iid: str) -> None:
        self.rig, self.tenant, self.client, self.iid = rig, tenant, client, iid
        self.base = f"/api/v1/integrations/{iid}"

    def ws_url(self, server: str | None = None, **query: str) -> str:
        url = (server or self.rig.suite.gateway).replace("http", "ws", 1) + self.base + "/sync/ws"
        return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    async def ticket(self, headers: dict[str, str] | None = None) -> dict:
        r = await self.client.post(self.base + "/sync/ticket", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def state_vector(self) -> bytes:
        return (await self.client.get(self.base + "/sync/state-vector")).content

    async def writers(self) -> set[int]:
        """The Yjs client ids that have items in the document."""
        return set(decode_state_vector(await self.state_vector()))

    async def record(self, pk: str) -> dict | None:
        r = await self.client.get(f"{self.base}/records/contacts/{pk}")
        return r.json() if r.status_code == 200 else None

    async def editor(self, **kw) -> YClient:
        return await YClient.connect(self.ws_url(), headers=self.tenant.headers, **kw)


@pytest.fixture
async def live(rig, dsn):
    slug = await register(dsn, rig.crm_connector.url)
    tenant = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}) as crm:
        await crm.post("/admin/reset")
        assert (await crm.post("/admin/seed", json={"contacts": 12, "companies": 2})).is_success
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=tenant.headers, timeout=30)
    iid = await install_crm(client, rig, slug)
    assert (await wait_status(client, iid, "active"))["status"] == "active"
    asked = datetime.now(UTC)
    # 409: a scheduled run began first; its end is waited for below all the same
    assert (await client.post(f"/api/v1/integrations/{iid}/sync/run")).status_code in (202, 409)
    deadline = time.monotonic() + 60
    while True:
        last = (await client.get(f"/api/v1/integrations/{iid}/sync/status")).json()["last_run"]
        if last and last["finished_at"] and datetime.fromisoformat(last["finished_at"]) >= asked:
            assert last["outcome"] == "succeeded", last
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    try:
        yield Live(rig, tenant, client, iid)
    finally:
        # the demo CRM is shared by this folder's tests: push what is due, then uninstall, so
        # nothing of this test reaches the CRM after the next one has reset it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = (await client.get(f"/api/v1/integrations/{iid}/sync/status")).json()
            if status.get("outbox_depth") == 0:
                break
            await asyncio.sleep(0.2)
        await client.delete(f"/api/v1/integrations/{iid}")
        await client.aclose()


def pks(client: YClient) -> list[str]:
    return sorted(k.split("/", 1)[1] for k in client.records if k.startswith("contacts/"))


# ------------------------------------------------------------------ convergence


async def test_clients_and_the_json_api_converge_through_the_gateway(live):
    a = await live.editor()
    b = await live.editor()
    try:
        assert len(pks(a)) == 12 and a.snapshot() == b.snapshot()
        first, second, third = pks(a)[:3]
        # an edit from one client reaches the other, and the JSON API
        await a.edit(lambda records: records[f"contacts/{first}"].__setitem__("first_name", "Ws"))
        await b.until(lambda: (b.record(f"contacts/{first}") or {}).get("first_name") == "Ws")
        assert (await live.record(first))["first_name"] == "Ws"
        # a JSON PATCH reaches both clients
        r = await live.client.patch(f"{live.base}/records/contacts/{second}", json={"phone": "J"})
        assert r.status_code == 200, r.text
        for c in (a, b):
            await c.until(lambda c=c: (c.record(f"contacts/{second}") or {}).get("phone") == "J")
        # a deletion made in a client (an update that only deletes) is durable and pushed
        await b.edit(lambda records: records.pop(f"contacts/{third}"))
        await a.until(lambda: a.record(f"contacts/{third}") is None)
        assert await live.record(third) is None
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=live.rig.crm.url,
                                     headers={"X-API-Key": live.rig.crm_key}) as crm:  # fmt: skip
            while (await crm.get(f"/v1/contacts/{third}")).status_code != 404:
                assert time.monotonic() < deadline, "the deletion never reached the CRM"
                await asyncio.sleep(0.2)
        # concurrent edits to different fields of one record both survive
        await asyncio.gather(
            a.edit(lambda r: r[f"contacts/{first}"].__setitem__("last_name", "A")),
            b.edit(lambda r: r[f"contacts/{first}"].__setitem__("email", "b@example.com")),
        )
        for c in (a, b):
            await c.until(lambda c=c: {"last_name": "A", "email": "b@example.com"}.items()
                          <= (c.record(f"contacts/{first}") or {}).items())  # fmt: skip
        assert a.snapshot() == b.snapshot()
        assert {"last_name": "A", "email": "b@example.com"}.items() <= (
            await live.record(first)
        ).items()
    finally:
        await a.close()
        await b.close()


async def test_node_y_websocket_client_converges_with_pycrdt_and_json(live):
    py = await live.editor()
    try:
        one, two, three = pks(py)[:3]
        created = f"node-{secrets.token_hex(3)}"
        plan = {
            "edit": {"key": f"contacts/{one}", "field": "first_name", "value": "FromNode"},
            "create": {"key": f"contacts/{created}",
                       "fields": {"id": created, "first_name": "New", "last_name": "Node",
                                  "email": f"{created}@example.com"}},
            "delete": f"contacts/{three}",
            "expect": {f"contacts/{one}": {"last_name": "FromPython"},
                       f"contacts/{two}": {"phone": "FromJson"}},
            "after_reconnect": {f"contacts/{two}": {"title": "AfterReconnect"}},
            "timeout_ms": 30000,
        }  # fmt: skip
        proc = await spawn_node(live, "interop.mjs", plan)
        try:
            events = await node_events(proc, until="edited")
            assert events[0]["event"] == "synced" and events[0]["size"] == len(py.records)
            # the Node client's edits reach the pycrdt client and the JSON API
            await py.until(lambda: (py.record(f"contacts/{one}") or {}).get("first_name")
                           == "FromNode" and py.record(f"contacts/{created}") is not None
                           and py.record(f"contacts/{three}") is None)  # fmt: skip
            assert (await live.record(one))["first_name"] == "FromNode"
            assert (await live.record(created))["last_name"] == "Node"
            assert await live.record(three) is None
            # the pycrdt client's and the JSON API's edits reach the Node client
            await py.edit(lambda r: r[f"contacts/{one}"].__setitem__("last_name", "FromPython"))
            r = await live.client.patch(f"{live.base}/records/contacts/{two}",
                                        json={"phone": "FromJson"})  # fmt: skip
            assert r.status_code == 200, r.text
            done = (await node_events(proc, until="converged"))[-1]
            # it reconnects with a fresh ticket (README's recipe) and goes on syncing
            await node_events(proc, until="resynced")
            r = await live.client.patch(f"{live.base}/records/contacts/{two}",
                                        json={"title": "AfterReconnect"})  # fmt: skip
            assert r.status_code == 200, r.text
            final = (await node_events(proc, until="done"))[-1]
            assert final["records"][f"contacts/{two}"]["title"] == "AfterReconnect"
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        # all three agree, before the reconnect and after it
        assert done["records"][f"contacts/{three}"] is None
        assert done["records"][f"contacts/{one}"]["first_name"] == "FromNode"
        assert done["records"][f"contacts/{two}"]["phone"] == "FromJson"
        await py.until(lambda: (py.record(f"contacts/{two}") or {}).get("title")
                       == "AfterReconnect")  # fmt: skip
        for key, fields in final["records"].items():
            assert py.record(key) == fields, key
        assert (await live.record(one))["last_name"] == "FromPython"
        assert (await live.record(two))["title"] == "AfterReconnect"
    finally:
        await py.close()


async def spawn_node(live, script: str, plan: dict) -> asyncio.subprocess.Process:
    """An unmodified y-websocket client in Node (``tests/sync_interop/<script>``) following
    ``plan`` on the live install, through the gateway, printing its events as JSON lines."""
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "y-websocket").is_dir():
        pytest.fail("Node and tests/sync_interop/node_modules are needed: run `make test` "
                    "(or npm ci --prefix tests/sync_interop)")  # fmt: skip
    env = {**os.environ, "SEEDOS_URL": live.rig.suite.gateway,
           "SEEDOS_API_KEY": live.tenant.key, "INTEGRATION_ID": live.iid}  # fmt: skip
    return await asyncio.create_subprocess_exec(
        node, str(INTEROP / script), json.dumps(plan), cwd=INTEROP, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def node_events(proc: asyncio.subprocess.Process, *, until: str) -> list[dict]:
    """The events a :func:`spawn_node` client printed, up to and with ``until``."""
    events = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 40)
        if not line:
            err = (await proc.stderr.read()).decode(errors="replace")
            raise AssertionError(f"node exited before {until!r}: {events} {err[-2000:]}")
        event = json.loads(line)
        events.append(event)
        assert event["event"] not in ("timeout", "ticket_refused"), events
        if event["event"] == until:
            return events


async def test_two_replicas_converge_through_listen_notify(live, dsn, tmp_path):
    suite = live.rig.suite
    env = suite_env(dsn, suite.keys, suite.ports)
    second = start("connector_service.app:create_app", factory=True, cwd=ROOT, env=env,
                   log_path=tmp_path / "replica.log", ready_path="/readyz")  # fmt: skip
    try:
        token = suite.keys.signer().mint(
            Principal(tenant_id=live.tenant.tenant_id, subject="test", role=Role.editor.value),
            audience="connector_service",
        )
        headers = {"Authorization": f"Bearer {token}"}
        a = await YClient.connect(live.ws_url(suite.connector_service), headers=headers)
        b = await YClient.connect(live.ws_url(second.url), headers=headers)
        try:
            assert a.snapshot() == b.snapshot() and len(a.records) >= 12
            one, two, three = pks(a)[:3]
            await a.edit(lambda r: r[f"contacts/{one}"].__setitem__("first_name", "ReplicaA"))
            await b.until(lambda: (b.record(f"contacts/{one}") or {}).get("first_name")
                          == "ReplicaA")  # fmt: skip
            await b.edit(lambda r: r[f"contacts/{two}"].__setitem__("first_name", "ReplicaB"))
            await b.edit(lambda r: r.pop(f"contacts/{three}"))
            await a.until(lambda: (a.record(f"contacts/{two}") or {}).get("first_name")
                          == "ReplicaB" and a.record(f"contacts/{three}") is None)  # fmt: skip
            # a change through the JSON API (the gateway's replica) reaches the other's client
            r = await live.client.patch(f"{live.base}/records/contacts/{one}", json={"phone": "9"})
            assert r.status_code == 200
            await b.until(lambda: (b.record(f"contacts/{one}") or {}).get("phone") == "9")
            # interleaved writes on both replicas: same document everywhere, and in the log
            for i in range(10):
                await a.edit(lambda r, i=i: r[f"contacts/{one}"].__setitem__("title", f"a{i}"))
                await b.edit(lambda r, i=i: r[f"contacts/{two}"].__setitem__("title", f"b{i}"))
            await a.until(lambda: (a.record(f"contacts/{two}") or {}).get("title") == "b9")
            await b.until(lambda: (b.record(f"contacts/{one}") or {}).get("title") == "a9")
            assert a.snapshot() == b.snapshot()
            assert (await live.record(two))["title"] == "b9"
            assert (await live.record(one))["title"] == "a9"
            # the listening connections drop: they come back, and what was missed arrives
            killed = await fetch(dsn, "SELECT pg_terminate_backend(pid) AS ok FROM"
                                 " pg_stat_activity WHERE application_name ="
                                 " 'connector_service-listen' AND datname = current_database()")  # fmt: skip
            assert len(killed) >= 2 and all(r["ok"] for r in killed)  # other suites too
            await a.edit(lambda r: r[f"contacts/{one}"].__setitem__("title", "after the drop"))
            await b.until(lambda: (b.record(f"contacts/{one}") or {}).get("title")
                          == "after the drop")  # fmt: skip
            await b.edit(lambda r: r[f"contacts/{two}"].__setitem__("title", "and back"))
            await a.until(lambda: (a.record(f"contacts/{two}") or {}).get("title") == "and back")
            assert a.snapshot() == b.snapshot()
        finally:
            await a.close()
            await b.close()
    finally:
        second.stop()


# ------------------------------------------------------------------ credentials


async def _refused(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with session.ws_connect(url, headers=headers or {}):
                pass
    return refused.value.status


async def test_revoking_a_key_closes_its_open_sockets_and_no_other(live, dsn):
    """The gateway checks an open socket's API key again every few seconds
    (SEEDOS_GATEWAY_WS_RECHECK_SECONDS, 5): once the key is revoked its socket is closed with
    1008; a socket on another key of the tenant stays open."""
    admin = await add_key(dsn, live.tenant, Role.admin)
    doomed = await add_key(dsn, live.tenant, Role.editor)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(live.ws_url(), headers=doomed.headers) as ws,
        session.ws_connect(live.ws_url(), headers=live.tenant.headers) as other,
    ):
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY  # in sync
        r = await live.client.delete(f"/api/v1/api-keys/{doomed.key_id}", headers=admin.headers)
        assert r.status_code == 200, r.text
        revoked = time.monotonic()
        while (message := await ws.receive(timeout=15)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1008
        assert time.monotonic() - revoked < 5 + 2 + 2  # a recheck, the key cache, slack
        while not other.closed:  # the other key's socket is still served
            try:
                await other.receive(timeout=0.5)
            except TimeoutError:
                break
        assert not other.closed


async def test_credentials_are_checked_before_any_state(live, dsn):
    suite = live.rig.suite
    # no credentials, a bad key, a bad ticket: refused at the handshake, through the gateway
    assert await _refused(live.ws_url()) == 403
    assert await _refused(live.ws_url(), {"Authorization": "Bearer sk_seedos_nope"}) == 403
    assert await _refused(live.ws_url(ticket="syt_" + secrets.token_urlsafe(32))) == 403
    assert await _refused(live.ws_url(ticket="")) == 403
    # directly at the service: an internal token is still required, a ticket is not enough
    assert await _refused(live.ws_url(suite.connector_service)) == 403
    # another tenant's key: that tenant has no such integration
    other = await make_tenant(dsn, role=Role.editor)
    assert await _refused(live.ws_url(), other.headers) == 403

    # a ticket works once
    issued = await live.ticket()
    seen = [issued["ticket"]]
    assert issued["writable"] is True and issued["ticket"].startswith("syt_")
    left = (datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)).total_seconds()
    assert 50 <= left <= 61
    client = await YClient.connect(live.ws_url(ticket=issued["ticket"]))
    try:
        assert len(client.records) >= 12
    finally:
        await client.close()
    assert await _refused(live.ws_url(ticket=issued["ticket"])) == 403
    # bound to its integration (and consumed by the failed try)
    issued = await live.ticket()
    seen.append(issued["ticket"])
    elsewhere = live.ws_url(ticket=issued["ticket"]).replace(live.iid, str(uuid.uuid4()))
    assert await _refused(elsewhere) == 403
    assert await _refused(live.ws_url(ticket=issued["ticket"])) == 403
    # expired
    issued = await live.ticket()
    seen.append(issued["ticket"])
    await fetch(dsn, "UPDATE ws_tickets SET expires_at = now() - interval '1 second'"
                " WHERE integration_id = $1", uuid.UUID(live.iid))  # fmt: skip
    assert await _refused(live.ws_url(ticket=issued["ticket"])) == 403
    # only hashes are stored, and tickets never reach the logs
    rows = await fetch(dsn, "SELECT ticket_hash FROM ws_tickets")
    assert all(len(r["ticket_hash"]) == 32 for r in rows)
    logs = suite.logs()
    assert "/sync/ws" in logs  # the connections were logged, without their tickets
    assert not [t for t in seen if t in logs]


async def test_viewers_read_but_cannot_write(live, dsn):
    viewer = await add_key(dsn, live.tenant, Role.viewer)
    before = await live.state_vector()
    reader = await YClient.connect(live.ws_url(), headers=viewer.headers)
    editor = await live.editor()
    try:
        assert reader.snapshot() == editor.snapshot() and len(reader.records) >= 12
        some = pks(reader)[0]
        # it receives others' changes
        await editor.edit(lambda r: r[f"contacts/{some}"].__setitem__("first_name", "Seen"))
        await reader.until(lambda: reader.record(f"contacts/{some}")["first_name"] == "Seen")
        assert await live.state_vector() != before
        # a handshake reply (sync step 2) holding nothing new, deletions included, is let be
        step2 = bytes([0, 1])
        await reader.send(step2 + write_message(reader.doc.get_update()))
        await editor.edit(lambda r: r[f"contacts/{some}"].__setitem__("last_name", "Alive"))
        await reader.until(lambda: reader.record(f"contacts/{some}")["last_name"] == "Alive")
        assert reader.doc.client_id not in await live.writers()
        # one holding changes is refused like any update from a viewer
        sneaky = await YClient.connect(live.ws_url(), headers=viewer.headers)
        try:
            other = Doc()
            with other.transaction():
                other.get("records", type=Map)[f"contacts/{some}x"] = Map({"id": f"{some}x"})
            await sneaky.send(step2 + write_message(other.get_update()))
            assert await sneaky.wait_closed() == 1008
        finally:
            await sneaky.close()
        # (the document itself may move meanwhile: the editor's changes are pushed to the CRM
        # and pulled back; what matters is that nothing of the viewers' got in)
        assert other.client_id not in await live.writers()
        # its own are refused: closed with 1008, the document untouched
        await reader.edit(lambda r: r[f"contacts/{some}"].__setitem__("first_name", "Nope"))
        assert await reader.wait_closed() == 1008
        assert "read-only" in reader.close_reason
        assert reader.doc.client_id not in await live.writers()
        assert (await live.record(some))["first_name"] == "Seen"
    finally:
        await reader.close()
        await editor.close()
    # a viewer's ticket is a read-only ticket
    issued = await live.ticket(headers=viewer.headers)
    assert issued["writable"] is False
    by_ticket = await YClient.connect(live.ws_url(ticket=issued["ticket"]))
    try:
        await by_ticket.edit(lambda r: r[f"contacts/{some}"].__setitem__("first_name", "Nope"))
        assert await by_ticket.wait_closed() == 1008
    finally:
        await by_ticket.close()
    assert by_ticket.doc.client_id not in await live.writers()
    assert (await live.record(some))["first_name"] == "Seen"


# ------------------------------------------------------------------ bad input


async def test_bad_input_closes_1008_and_changes_nothing(live):
    before = await live.state_vector()
    stray = Doc()
    with stray.transaction():
        stray.get("records", type=Map)["nostream/1"] = Map({"a": "b"})
    not_a_map = Doc()
    with not_a_map.transaction():
        not_a_map.get("records", type=Map)[f"contacts/{secrets.token_hex(3)}"] = "flat"
    cases = {
        "not a Yjs update": create_update_message(b"not-an-update"),
        "unknown stream": create_update_message(stray.get_update()),
        "record not a map": create_update_message(not_a_map.get_update()),
        "bad state vector": bytes([0, 0]) + write_message(b"\xff\xff\xff"),
        "truncated frame": bytes([0, 2, 50]) + b"short",
        "unknown sync type": bytes([0, 9]) + write_message(b""),
        "text frame": "hello",
    }
    for name, message in cases.items():
        client = await live.editor()
        try:
            await client.send(message)
            assert await client.wait_closed() == 1008, name
        finally:
            await client.close()
        assert await live.state_vector() == before, name
    # the document still syncs and takes good updates afterwards
    client = await live.editor()
    try:
        some = pks(client)[0]
        await client.edit(lambda r: r[f"contacts/{some}"].__setitem__("first_name", "Fine"))
        deadline = time.monotonic() + 10
        while (await live.record(some))["first_name"] != "Fine":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def test_hostile_messages_close_fast_and_change_nothing(live):
    """What the review found: a var-uint bomb, NUL in keys, an overwrite of an existing record
    the scratch check cannot see, oversized awareness."""
    before = await live.state_vector()
    nul = Doc()
    with nul.transaction():
        nul.get("records", type=Map)["contacts/a\x00b"] = Map({"f": "x"})
    cases = {
        "var-uint bomb": bytes([0]) + b"\x81" * 200_000 + b"\x01",
        "NUL in a key": create_update_message(nul.get_update()),
        "awareness over 64 KiB": bytes([1]) + write_message(b"\x01" + b"a" * 70_000),
    }
    for name, message in cases.items():
        client = await live.editor()
        try:
            started = time.monotonic()
            await client.send(message)
            assert await client.wait_closed() == 1008, name
            assert time.monotonic() - started < 3, name
        finally:
            await client.close()
        assert await live.state_vector() == before, name
    # an existing record overwritten with a string: applied, refused, the document reloaded
    client = await live.editor()
    try:
        some = pks(client)[0]
        await client.edit(lambda r: r.__setitem__(f"contacts/{some}", "flat"))
        assert await client.wait_closed() == 1008
    finally:
        await client.close()
    assert await live.state_vector() == before
    r = await live.client.get(live.base + "/records", params={"stream": "contacts"})
    assert r.status_code == 200 and any(item["id"] == some for item in r.json()["items"])


async def test_a_replica_catches_up_across_compaction_and_sends_only_the_difference(live, dsn):
    """Two stores (as two replicas would hold) on the database: one appends past several
    compactions; the other's clients get what changed, not the snapshot it reloads."""
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=4)
    database = Database(pool, acquire_timeout=5)
    iid = uuid.UUID(live.iid)
    hub_a, hub_b = Hub(tick_seconds=0.001), Hub(tick_seconds=0.001)
    a = DocStore(database, broadcaster=hub_a, compact_rows=3)
    b = DocStore(database, broadcaster=hub_b, compact_rows=3)
    sent: list[bytes] = []
    arrived = asyncio.Event()

    async def send(message: bytes) -> None:
        sent.append(message)
        arrived.set()

    peer = Peer(send)
    hub_b.join(iid, peer)
    runner = asyncio.create_task(peer.run())
    try:
        async with b.session(iid) as doc_b:
            client = Doc()
            client.apply_update(doc_b.doc.get_update())  # what its client was sent (step 2)
            snapshot_size = len(doc_b.doc.get_update())
            key = sorted(k for k in doc_b.records if k.startswith("contacts/"))[0]
        for i in range(10):
            async with a.session(iid) as doc_a:
                update, _ = doc_a.transact(
                    PLATFORM, lambda r, i=i: r[key].__setitem__("title", f"t{i}")
                )
                await a.append(doc_a, PLATFORM, update)
        rows = await fetch(dsn, "SELECT log_through FROM sync_shards WHERE id = $1", iid)
        assert rows[0]["log_through"] > 0  # compacted: B's next rows are gone from the log
        async with b.session(iid) as doc_b:  # what its listener does on a notification
            assert doc_b.get(key)["title"] == "t9"
            wanted = doc_b.records.to_py()
        await asyncio.wait_for(arrived.wait(), 5)
        assert len(sent) == 1 and len(sent[0]) < snapshot_size / 2
        client.apply_update(read_message(sent[0][2:]))
        assert client.get("records", type=Map).to_py() == wanted
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await pool.close()
