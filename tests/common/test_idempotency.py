"""common.idempotency.run_once on the real table: one run per key, answers kept or not."""

from __future__ import annotations

import asyncio

import pytest

from common import idempotency
from common.idempotency import Answer, InProgress, KeyReused
from tests.support import make_tenant


async def test_only_a_final_answer_is_kept(database, dsn):
    tenant = (await make_tenant(dsn)).tenant_id
    runs: list[str] = []

    def operation(answer: Answer):
        async def run() -> Answer:
            runs.append("ran")
            return answer

        return run

    async def once(answer: Answer, key: str = "k-1", body: str = "same") -> Answer:
        return await idempotency.run_once(
            database, tenant_id=tenant, scope="test.op", key=key,
            request_hash=idempotency.fingerprint(body, secret=b"k"), operation=operation(answer),
        )  # fmt: skip

    # "still running elsewhere" says nothing yet: not kept, the repeat runs again
    assert (await once(Answer(409, {"code": "idempotency_in_progress"}, final=False))).status == 409
    assert (await once(Answer(503, {"code": "down"}))).status == 503  # worth retrying: not kept
    first = await once(Answer(201, {"id": 1}))
    assert first == Answer(201, {"id": 1}) and len(runs) == 3
    replay = await once(Answer(201, {"id": 2}))
    assert replay == Answer(201, {"id": 1}, replayed=True) and len(runs) == 3
    with pytest.raises(KeyReused):
        await once(Answer(201, {}), body="another")


async def test_a_repeat_while_the_first_runs_is_refused(database, dsn):
    tenant = (await make_tenant(dsn)).tenant_id
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow() -> Answer:
        started.set()
        await finish.wait()
        return Answer(200, {"done": True})

    def once(operation):
        return idempotency.run_once(
            database, tenant_id=tenant, scope="test.op", key="k-2",
            request_hash=idempotency.fingerprint("b", secret=b"k"), operation=operation,
        )  # fmt: skip

    first = asyncio.create_task(once(slow))
    await started.wait()
    with pytest.raises(InProgress):
        await once(slow)
    finish.set()
    assert (await first).body == {"done": True}


def test_the_fingerprint_is_keyed():
    body = {"credentials": {"password": "hunter2"}}
    assert idempotency.fingerprint("s", body, secret=b"a") == idempotency.fingerprint(
        "s", {"credentials": {"password": "hunter2"}}, secret=b"a"
    )
    assert idempotency.fingerprint("s", body, secret=b"a") != idempotency.fingerprint(
        "s", body, secret=b"b"
    )
