"""What one sender's refused updates may do to another's: nothing. The security review's
attacks on the memory of refused edits, each as the victim sees it, and the cost of refusals
bounded per sender.

Real processes, as in test_sync_ws.py (its ``live`` fixture: the demo CRM's contacts, whose
schema wants ``email`` a string, and required, and ``first_name`` a string or null). Each
sender is an API key of its own: refusals belong to the principal, not to a Yjs client id."""

from __future__ import annotations

import asyncio
import time
import uuid

from pycrdt import Doc, Map, Text, merge_updates, write_message

from common.roles import Role
from connector_service.sync.lib0 import decode_state_vector, deleted_ranges, read_update
from connector_service.sync.refusals import Rollbacks
from connector_service.sync.store import DocStore
from tests.connector_service import test_sync_ws
from tests.connector_service.test_sync_schema import fetch_doc, post_update, round_trip
from tests.connector_service.test_sync_ws import pks
from tests.connector_service.yclient import YClient
from tests.support import add_key

live = test_sync_ws.live  # the fixture: an install of the demo CRM, its first sync done

STEP2, UPDATE = bytes([0, 1]), bytes([0, 2])


async def editor(live, dsn) -> YClient:
    """A WebSocket client with an editor API key of its own: another sender."""
    key = await add_key(dsn, live.tenant, Role.editor)
    return await YClient.connect(live.ws_url(), headers=key.headers)


async def until_record(live, key: str, done, *, client=None, within: float = 15) -> None:
    """Poll the record ``key`` until ``done(record or None)``, ``client`` staying open."""
    deadline = time.monotonic() + within
    while not done(await live.record(key.split("/", 1)[1])):
        assert client is None or client.close_code is None, client.close_reason
        assert time.monotonic() < deadline, f"{key} never reached what was waited for"
        await asyncio.sleep(0.05)


async def until_field(live, key: str, field: str, value, within: float = 15) -> None:
    await until_record(live, key, lambda r: (r or {}).get(field) == value, within=within)


def forge(client: YClient, client_id: int, change) -> bytes:
    """An update made as if by the Yjs client ``client_id``, at its next clock: anybody may
    write one (client ids are in every state vector)."""
    forged = Doc(client_id=client_id)
    forged.apply_update(client.doc.get_update())
    state = forged.get_state()
    with forged.transaction():
        change(forged.get("records", type=Map))
    return forged.get_update(state)


# ------------------------------------------------------------------ reading updates


def test_read_update_reads_the_clock_ranges_yjs_writes():
    """The ranges refusals are remembered by: every kind of content a records document may
    hold (strings count UTF-16 code units), deletions, and the gaps of a merged update."""
    doc = Doc(client_id=7)
    records, text = doc.get("records", type=Map), doc.get("t", type=Text)
    with doc.transaction():
        records["contacts/1"] = Map({"s": "h\u00e9llo\U0001f600", "n": None, "b": True, "f": 1.5,
                                     "i": 2**40, "neg": -5, "bin": b"xy", "j": {"k": [1, {}]}})  # fmt: skip
        text += "\U0001f600 text"
    assert read_update(doc.get_update()) == ({7: [(0, 16)]}, {})
    state = doc.get_state()
    with doc.transaction():
        records["contacts/1"]["n"] = "now"
        del text[0:2]
    whole = deleted_ranges(doc.get_update(doc.get_state()))  # the document's delete set
    assert read_update(doc.get_update(state)) == ({7: [(16, 17)]}, whole)
    assert decode_state_vector(doc.get_state()) == {7: 17}
    parts = []
    for i in range(3):
        state = doc.get_state()
        records[f"contacts/{i + 2}"] = i
        parts.append(doc.get_update(state))
    assert read_update(merge_updates(parts[0], parts[2]))[0] == {7: [(17, 18), (19, 20)]}


def test_rollbacks_hold_back_a_sender_for_the_rest_of_the_minute_and_nobody_else():
    now = [1000.0]
    rollbacks = Rollbacks(clock=lambda: now[0])
    doc, other_doc = uuid.uuid4(), uuid.uuid4()
    for _ in range(4):
        rollbacks.count(doc, "apikey:a")
        now[0] += 1
    assert rollbacks.wait(doc, "apikey:a") == 0
    rollbacks.count(doc, "apikey:a")  # the fifth within a minute
    assert rollbacks.wait(doc, "apikey:a") == 56  # the first one's minute is up in 56 s
    assert rollbacks.wait(doc, "apikey:b") == rollbacks.wait(other_doc, "apikey:a") == 0
    now[0] += 56
    assert rollbacks.wait(doc, "apikey:a") == 0


# ------------------------------------------------------------------ forged client ids


async def test_a_refusal_forged_under_a_victims_client_id_does_not_block_its_next_edit(live, dsn):
    victim, attacker = await live.editor(), await editor(live, dsn)
    try:
        a, b = (f"contacts/{pk}" for pk in pks(victim)[:2])
        await victim.edit(lambda r: r[a].__setitem__("first_name", "V1"))
        await attacker.until(lambda: attacker.record(a)["first_name"] == "V1")
        refused = forge(attacker, victim.doc.client_id, lambda r: r[b].__setitem__("email", 98765))
        await attacker.send(UPDATE + write_message(refused))
        assert await attacker.wait_closed() == 1008
        # the victim's next edit, at the very clock the forged one used, is taken
        await victim.edit(lambda r: r[a].__setitem__("first_name", "V2"))
        await until_field(live, a, "first_name", "V2")
        await round_trip(victim)
        assert victim.close_code is None
    finally:
        await victim.close()
        await attacker.close()


async def test_a_victims_sync_step_2_after_a_forged_refusal_is_taken(live, dsn):
    victim, attacker = await live.editor(), await editor(live, dsn)
    try:
        a, b = (f"contacts/{pk}" for pk in pks(victim)[2:4])
        refused = forge(attacker, victim.doc.client_id, lambda r: r[b].__setitem__("email", 1))
        await attacker.send(UPDATE + write_message(refused))
        assert await attacker.wait_closed() == 1008
        await victim.close()  # offline: an edit made meanwhile goes in the next step 2
        with victim.doc.transaction():
            victim.records[a]["first_name"] = "Offline"
    finally:
        await victim.close()
        await attacker.close()
    again = await live.editor()  # the victim reconnecting, with its key
    try:
        await again.send(STEP2 + write_message(victim.doc.get_update(await live.state_vector())))
        await until_field(live, a, "first_name", "Offline")
        await round_trip(again)  # a late close would have come by now
        assert again.close_code is None
    finally:
        await again.close()


async def test_a_step_2_with_the_senders_refused_edit_and_more_is_closed_4422_not_dropped(live):
    """The refused edit again is let be; with an edit made after it, the client hears (4422)
    that the rest cannot be taken, rather than losing it quietly."""
    sender = await live.editor()
    try:
        a, b = (f"contacts/{pk}" for pk in pks(sender)[10:12])
        await sender.edit(lambda r: r[a].__setitem__("email", 98765))
        assert await sender.wait_closed() == 1008
    finally:
        await sender.close()
    with sender.doc.transaction():  # offline, after the refusal: a deletion, which adds no item
        sender.records[b].pop("phone")
    again = await live.editor()  # the same sender reconnecting
    try:
        await again.send(STEP2 + write_message(sender.doc.get_update(await live.state_vector())))
        assert await again.wait_closed() == 4422
        assert again.close_reason.startswith("refused edit: invalid_record: ")
    finally:
        await again.close()
    assert "phone" in await live.record(b.split("/", 1)[1])


# ------------------------------------------------------------------ deletions


async def test_a_deletion_overlapping_a_refused_one_is_taken(live, dsn):
    """Refused: deleting a required field. Then deleting the whole record (which deletes that
    field's item too) is taken, from another sender and from the same one."""
    a = await live.editor()
    try:
        x, y = (f"contacts/{pk}" for pk in pks(a)[4:6])
        await a.edit(lambda r: r[x].pop("email"))
        assert await a.wait_closed() == 1008
    finally:
        await a.close()
    b = await editor(live, dsn)
    try:
        await b.edit(lambda r: r.pop(x))
        await until_record(live, x, lambda r: r is None, client=b)
        await round_trip(b)
        assert b.close_code is None
    finally:
        await b.close()
    # the same sender: its refused deletion of y's email, then y deleted whole, is taken
    first = await live.editor()
    try:
        await first.edit(lambda r: r[y].pop("email"))
        assert await first.wait_closed() == 1008
    finally:
        await first.close()
    second = await live.editor()
    try:
        await second.edit(lambda r: r.pop(y))
        await until_record(live, y, lambda r: r is None, client=second)
    finally:
        await second.close()


# ------------------------------------------------------------------ pending items


def builds_on_next_edit(client: YClient, client_id: int, key: str, value) -> bytes:
    """An update whose one item sits right after the item ``client_id`` will write next for
    ``key``'s first_name: the server cannot integrate it before that item arrives."""
    ahead = Doc(client_id=client_id)
    ahead.apply_update(client.doc.get_update())
    ahead.get("records", type=Map)[key]["first_name"] = "guessed"
    state = ahead.get_state()
    builder = Doc()
    builder.apply_update(ahead.get_update())
    builder.get("records", type=Map)[key]["first_name"] = value
    return builder.get_update(state)


async def test_an_update_waiting_for_items_the_server_lacks_is_refused_not_blamed_on_others(
    live, dsn, database
):
    victim, attacker = await live.editor(), await editor(live, dsn)
    try:
        a, b = (f"contacts/{pk}" for pk in pks(victim)[6:8])
        pending = builds_on_next_edit(victim, victim.doc.client_id, a, 98765)
        await attacker.send(UPDATE + write_message(pending))
        assert await attacker.wait_closed() == 1008
        assert attacker.close_reason.startswith("incomplete_update: the update depends on")
        # the victim's edit (the item it waited for) is the victim's alone, and taken
        await victim.edit(lambda r: r[a].__setitem__("first_name", "Mine"))
        await until_field(live, a, "first_name", "Mine")
        # over HTTP: 422, nothing kept
        before = await live.state_vector()
        pending = builds_on_next_edit(victim, victim.doc.client_id, a, 98765)
        r = await live.client.post(live.base + "/sync",
                                   content=write_message(before) + write_message(pending))  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "incomplete_update", r.text
        assert await live.state_vector() == before
        # a valid value waiting the same way never gets into memory without the log
        other = await editor(live, dsn)
        try:
            sneaky = builds_on_next_edit(victim, victim.doc.client_id, b, "Sneaky")
            await other.send(UPDATE + write_message(sneaky))
            assert await other.wait_closed() == 1008
        finally:
            await other.close()
        await victim.edit(lambda r: r[b].__setitem__("first_name", "MineToo"))
        await until_field(live, b, "first_name", "MineToo")
        await round_trip(victim)
        assert victim.close_code is None
        async with DocStore(database).session(uuid.UUID(live.iid)) as logged:  # from the log
            assert logged.get(b)["first_name"] == "MineToo"
            assert logged.get(a)["first_name"] == "Mine"
    finally:
        await victim.close()
        await attacker.close()


# ------------------------------------------------------------------ the cost of refusals


async def test_a_sender_refused_too_often_is_refused_before_applying_for_a_while(live, dsn):
    """Each refusal found once applied reloads the document: five a minute per sender, then
    its updates are refused without applying (429, or 1013 on the WebSocket); others go on."""
    noisy = await add_key(dsn, live.tenant, Role.editor)
    headers = noisy.headers
    doc = await fetch_doc(live)
    some = sorted(k for k in doc.get("records", type=Map) if k.startswith("contacts/"))[8]

    async def post(change) -> object:
        fresh = await fetch_doc(live)
        before = fresh.get_state()
        with fresh.transaction():
            change(fresh.get("records", type=Map))
        body = write_message(before) + write_message(fresh.get_update(before))
        return await live.client.post(live.base + "/sync", content=body, headers=headers)

    for _ in range(5):
        r = await post(lambda records: records[some].__setitem__("email", 98765))
        assert r.status_code == 422 and r.json()["code"] == "invalid_record", r.text
    r = await post(lambda records: records[some].__setitem__("email", 98765))
    assert r.status_code == 429 and r.json()["code"] == "too_many_refused_updates", r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    r = await post(lambda records: records[some].__setitem__("first_name", "Fine"))
    assert r.status_code == 429, r.text  # valid or not: not applied for now
    # over the WebSocket, the same sender is closed with 1013 before anything is applied
    client = await YClient.connect(live.ws_url(), headers=headers)
    try:
        await client.edit(lambda r: r[some].__setitem__("first_name", "Fine"))
        assert await client.wait_closed() == 1013
        assert client.close_reason.startswith("too_many_refused_updates")
    finally:
        await client.close()
    # another sender is not held back
    r, _ = await post_update(live, doc, lambda records: records[some].__setitem__("phone", "1"))
    assert r.status_code == 200, r.text
    await until_field(live, some, "phone", "1")
    assert (await live.record(some.split("/", 1)[1]))["first_name"] != "Fine"


# ------------------------------------------------------------------ what still goes through


async def test_valid_concurrent_edits_go_through_beside_a_refused_one(live, dsn):
    a, b = await live.editor(), await editor(live, dsn)
    refused = await live.editor()  # the same sender as a, another document
    try:
        x = f"contacts/{pks(a)[9]}"
        await asyncio.gather(
            a.edit(lambda r: r[x].__setitem__("last_name", "FromA")),
            b.edit(lambda r: r[x].__setitem__("phone", "FromB")),
            refused.edit(lambda r: r[x].__setitem__("email", 98765)),
        )
        assert await refused.wait_closed() == 1008
        await until_field(live, x, "last_name", "FromA")
        await until_field(live, x, "phone", "FromB")
        # a's next edit is not taken for the refused one, though the sender is the same
        await a.edit(lambda r: r[x].__setitem__("first_name", "StillA"))
        await until_field(live, x, "first_name", "StillA")
        for c in (a, b):
            await c.until(lambda c=c: (c.record(x) or {}).get("first_name") == "StillA")
            assert c.close_code is None
        assert a.snapshot() == b.snapshot()
        assert (await live.record(x.split("/", 1)[1]))["email"] != 98765
    finally:
        for c in (a, b, refused):
            await c.close()
