"""The breaker's state machine, the mapping of connector answers, and the address rule applied
when connecting: the parts of the ConnectorManager that need no connector to be wrong."""

from __future__ import annotations

import uuid

import httpx
import pytest

from common.endpoints import EndpointNotAllowed, EndpointPolicy, parse_networks
from connector_service.manager import errors
from connector_service.manager.breaker import Breakers
from connector_service.manager.manager import ConnectorManager, Target, Timeouts, _failure
from connector_service.manager.recorder import Recorder
from seedos_sdk.testing.process import serve
from tests.conftest import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_probes_once_and_closes():
    clock = Clock()
    b = Breakers(threshold=3, open_seconds=10, clock=clock)
    for _ in range(2):
        assert not b.failure("x", b.acquire("x").ticket, "down")
    assert b.snapshot("x")["state"] == "closed"
    assert b.failure("x", b.acquire("x").ticket, "down")  # the third opens it
    assert b.snapshot("x")["state"] == "open" and b.open_count() == 1
    assert b.acquire("x").wait == pytest.approx(10)
    clock.now = 10.5
    probe = b.acquire("x")
    assert probe.wait is None and b.snapshot("x")["state"] == "half_open"
    assert b.acquire("x").wait is not None  # only one probe at a time
    assert b.success("x", probe.ticket)
    assert b.snapshot("x") == {"state": "closed", "consecutive_failures": 0}
    assert b.open_count() == 0


def test_a_failed_probe_reopens_and_only_the_probe_frees_its_place():
    clock = Clock()
    b = Breakers(threshold=1, open_seconds=5, clock=clock)
    early = b.acquire("x")  # let through while closed, still running later
    b.failure("x", b.acquire("x").ticket, "down")
    clock.now = 6
    probe = b.acquire("x")
    assert probe.wait is None
    b.release("x", early.ticket)  # the early call ending does not free the probe's place
    assert b.acquire("x").wait is not None
    assert not b.failure("x", probe.ticket, "still down")  # reopened, not newly opened
    assert b.snapshot("x")["state"] == "open" and b.acquire("x").wait == pytest.approx(5)
    clock.now = 12
    again = b.acquire("x")
    b.release("x", again.ticket)  # a probe that ended without a verdict lets another go
    assert b.acquire("x").wait is None


def test_circuits_are_bounded_and_the_open_count_follows_evictions():
    b = Breakers(threshold=1, open_seconds=5, size=3)
    for key in range(5):
        b.failure(key, b.acquire(key).ticket, "down")
    assert b.open_count() == 3


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("status", "problem", "kind", "counts"),
    [
        (401, {"code": "auth_failed"}, errors.ConnectorAuthFailed, False),
        (422, {"errors": {"not": "a list"}}, errors.ConnectorRejected, False),
        (404, {"code": "unknown_action"}, errors.ConnectorRejected, False),
        (429, {"category": "retryable"}, errors.ConnectorRetryable, False),
        (503, {}, errors.ConnectorRetryable, True),
        (500, {"code": "invalid_output"}, errors.InvalidConnectorResponse, True),
        (502, {"detail": ["odd"], "code": 7}, errors.ConnectorRetryable, True),
    ],
)
def test_connector_answers_map_to_errors(status, problem, kind, counts):
    exc = _failure("crm", _response(status, **{"retry-after": "3"}), problem)
    assert type(exc) is kind
    assert exc.counts_against_circuit is counts
    assert "errors" not in exc.extra or isinstance(exc.extra["errors"], list)
    if status == 404:
        assert exc.status == 404


async def _no_credentials(_target, _force: bool) -> dict[str, str]:
    return {}


async def test_addresses_are_checked_when_connecting():
    """``localhost`` resolves to loopback: refused at connect time by a rule without it, even
    though the URL itself is well formed (there is no check-then-connect gap to rebind in)."""
    with serve("tests.connector_service.flaky_connector:app", cwd=ROOT) as flaky:
        port = flaky.url.rsplit(":", 1)[1]

        def manager(networks: str) -> ConnectorManager:
            return ConnectorManager(
                policy=EndpointPolicy(parse_networks(networks)),
                breakers=Breakers(threshold=5, open_seconds=1),
                recorder=Recorder(None, flush_seconds=1, batch_size=10, max_queued=100),  # type: ignore[arg-type]
                credentials=_no_credentials,
                timeouts=Timeouts(connect=1, check=3, call=3, sync=3), max_attempts=1,
            )  # fmt: skip

        target = Target(id=uuid.uuid4(), tenant_id=uuid.uuid4(), connector_name="flaky",
                        service_name="flaky", status="active", config={},
                        endpoint_url=f"http://localhost:{port}")  # fmt: skip
        refusing = manager("10.0.0.0/8")
        try:
            with pytest.raises(EndpointNotAllowed, match="localhost"):
                await refusing.check(target)
        finally:
            await refusing.aclose()
        allowing = manager("127.0.0.0/8,::1/128")
        try:
            await allowing.check(target)
            with pytest.raises(EndpointNotAllowed):  # user info never gets as far as a call
                await allowing.check(Target(**{**target.__dict__,
                                               "endpoint_url": f"http://u:p@localhost:{port}"}))  # fmt: skip
        finally:
            await allowing.aclose()


async def test_a_failed_flush_on_a_full_queue_drops_the_oldest_rows_and_counts_them(dsn):
    """The rows of a failed write go back in front of the queue; when rows that arrived during
    the write leave no room for all of them, the oldest are dropped, each one counted."""
    import asyncio

    import asyncpg
    from prometheus_client import REGISTRY

    from common import db
    from connector_service.manager.recorder import Call

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=db._init_connection)
    database = db.Database(pool, acquire_timeout=10)
    recorder = Recorder(database, flush_seconds=60, batch_size=4, max_queued=4)
    tenant, install = uuid.uuid4(), uuid.uuid4()

    def call(name: str) -> Call:
        return Call(tenant, install, name, "svc", "check", 0.01)

    def dropped() -> float:
        return REGISTRY.get_sample_value("seedos_connector_metric_rows_dropped_total") or 0.0

    before = dropped()
    try:
        for name in ("a\x00", "b", "c", "d"):  # PostgreSQL refuses the NUL: the write fails
            recorder.record(call(name))
        held = await database.acquire()  # the write waits for the only connection
        flushing = asyncio.create_task(recorder.flush())
        for _ in range(500):  # until the write has taken its batch, 5 s at most
            if not recorder._rows:
                break
            await asyncio.sleep(0.01)
        assert not recorder._rows  # the batch was taken
        recorder.record(call("e"))
        recorder.record(call("f"))
        await database.release(held)
        with pytest.raises(asyncpg.PostgresError):
            await flushing
        names = [row[2] for row in recorder._rows]
        assert names == ["c", "d", "e", "f"]  # the two oldest went, the newest stayed
        assert dropped() - before == 2
    finally:
        await pool.close()
