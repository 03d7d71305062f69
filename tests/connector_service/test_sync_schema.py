"""Yjs updates meet the stream's schema as PATCH does: over HTTP (``POST sync``, 422) and over
the WebSocket (1008 with a reason a client can show, and no reconnect loop re-sending the
refused edit), with the document, the log and the other clients untouched.

Real processes, as in test_sync_ws.py (its ``live`` fixture: the demo CRM's contacts, whose
schema wants ``email`` a string, and required)."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid

from pycrdt import Doc, Map, create_sync_message, write_message

from connector_service.sync import records as rec
from connector_service.sync.lib0 import decode_state_vector, deleted_ranges
from connector_service.sync.refusals import Recalled, Refusals, refused_edit
from tests.connector_service import test_sync_ws
from tests.connector_service.test_sync_ws import pks, spawn_node
from tests.connector_service.yclient import YClient

live = test_sync_ws.live  # the fixture: an install of the demo CRM, its first sync done

STEP2 = bytes([0, 1])


async def fetch_doc(live) -> Doc:
    doc = Doc()
    doc.get("records", type=Map)
    r = await live.client.post(live.base + "/sync", content=write_message(doc.get_state())
                               + write_message(b""))  # fmt: skip
    assert r.status_code == 200, r.text
    doc.apply_update(r.content)
    return doc


async def post_update(live, doc: Doc, change) -> tuple[object, bytes]:
    before = doc.get_state()
    with doc.transaction():
        change(doc.get("records", type=Map))
    update = doc.get_update(before)
    r = await live.client.post(live.base + "/sync", content=write_message(before)
                               + write_message(update))  # fmt: skip
    return r, update


async def round_trip(client: YClient) -> None:
    """Everything the client sent before is handled once the answer to its step 1 is back."""
    client.synced.clear()
    await client.send(create_sync_message(client.doc))
    await asyncio.wait_for(client.synced.wait(), 10)


# ------------------------------------------------------------------ the rule itself


def test_the_rule_counts_an_integral_number_as_an_integer():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
              "required": ["s"]}  # fmt: skip
    assert rec.schema_problems({"n": 98765.0, "s": "12345"}, schema) == []
    assert rec.schema_problems({"n": 1.5, "s": 98765.0}, schema) == [
        ("/n", "1.5 is not of type 'integer'"),
        ("/s", "98765 is not of type 'string'"),
    ]
    assert rec.schema_problems({"n": 1}, schema) == [("/", "'s' is a required property")]
    assert rec.schema_problems({"s": 5}, None) == []  # no schema, nothing to say


def holds(server: Doc) -> dict:
    """What Refusals.recall is told of the document: its state vector and delete set."""
    state = server.get_state()
    return {"state": decode_state_vector(state),
            "deleted": lambda: deleted_ranges(server.get_update(state))}  # fmt: skip


def test_a_refused_edit_is_known_again_and_nothing_else():
    """What refusals.Refusals recognizes: the sender's refused edit again (let be), or with
    more (refused: 4422); not another sender's updates, nor the same client's edits the server
    took, in another client's full update."""
    iid = uuid.uuid4()
    server, client = Doc(), Doc()
    records = client.get("records", type=Map)
    with client.transaction():
        records["contacts/1"] = Map({"email": "a@example.com"})
    server.apply_update(client.get_update())  # taken
    before = client.get_state()
    records["contacts/1"]["email"] = 98765
    refused = client.get_update(before)
    refusals = Refusals()

    def recall(update: bytes, sender: str = "apikey:a") -> Recalled | None:
        return refusals.recall(iid, sender, update, **holds(server))

    assert recall(refused) is None
    here = deleted_ranges(server.get_update(server.get_state()))
    edit = refused_edit("invalid_record: email", refused, server.get_state(), here)
    refusals.remember(iid, "apikey:a", edit)
    assert recall(refused) == Recalled("invalid_record: email", more=False)
    step2 = client.get_update(server.get_state())  # a reconnect's sync step 2
    assert recall(step2) == Recalled("invalid_record: email", more=False)
    assert recall(step2, "apikey:b") is None  # another sender: its own refusals only
    after = client.get_state()
    records["contacts/1"]["phone"] = "later"  # builds on it
    assert recall(client.get_update(after)) == Recalled("invalid_record: email", more=True)
    assert recall(client.get_update(server.get_state())).more
    other = Doc()
    other.apply_update(server.get_update())  # holds the client's taken items
    with other.transaction():
        other.get("records", type=Map)["contacts/1"]["email"] = "b@example.com"
    assert recall(other.get_update()) is None
    assert refusals.recall(uuid.uuid4(), "apikey:a", refused, state={}, deleted=dict) is None


def test_a_step_2_with_a_refused_edit_and_a_later_deletion_is_not_let_be():
    """A deletion made after the refused edit (it moves no state vector) is something more."""
    iid = uuid.uuid4()
    server, client = Doc(), Doc()
    records = client.get("records", type=Map)
    with client.transaction():
        records["contacts/1"] = Map({"email": "a@example.com"})
        records["contacts/2"] = Map({"email": "b@example.com"})
    server.apply_update(client.get_update())
    before = client.get_state()
    records["contacts/1"]["email"] = 98765
    refusals = Refusals()
    here = deleted_ranges(server.get_update(server.get_state()))
    refusals.remember(iid, "s", refused_edit("r", client.get_update(before), server.get_state(),
                                             here))  # fmt: skip
    del records["contacts/2"]  # offline, after the refusal

    step2 = client.get_update(server.get_state())
    assert refusals.recall(iid, "s", step2, **holds(server)) == Recalled("r", more=True)


def test_a_refused_deletion_is_known_by_exactly_what_it_deletes():
    iid = uuid.uuid4()
    server, client = Doc(), Doc()
    records = client.get("records", type=Map)
    with client.transaction():
        records["contacts/1"] = Map({"id": "1", "email": "a@example.com"})
    server.apply_update(client.get_update())
    state = server.get_state()
    here = deleted_ranges(server.get_update(state))
    before = client.get_state()
    del records["contacts/1"]["email"]
    only_email = client.get_update(before)
    refusals = Refusals()
    refusals.remember(iid, "s", refused_edit("required", only_email, state, here))
    known = holds(server)
    assert refusals.recall(iid, "s", only_email, **known) == Recalled("required", more=False)
    step2 = client.get_update(state)
    assert refusals.recall(iid, "s", step2, **known) == Recalled("required", more=False)
    assert refusals.recall(iid, "other", only_email, **known) is None
    whole = Doc()
    whole.apply_update(server.get_update())
    before = whole.get_state()
    del whole.get("records", type=Map)["contacts/1"]  # overlaps the email's deletion
    assert refusals.recall(iid, "s", whole.get_update(before), **known) is None  # checked anew


# ------------------------------------------------------------------ HTTP


async def test_post_sync_refuses_records_the_schema_refuses(live):
    doc = await fetch_doc(live)
    before = await live.state_vector()
    some = sorted(k for k in doc.get("records", type=Map) if k.startswith("contacts/"))[0]
    pk = some.split("/", 1)[1]
    email = (await live.record(pk))["email"]

    # a field of an existing record (seen only once applied): the case
    r, _ = await post_update(live, doc, lambda records: records[some].__setitem__("email", 98765))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid_record"
    assert problem["errors"] == [
        {"path": f"/{some}/email", "message": "98765 is not of type 'string'"}
    ]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await live.state_vector() == before
    assert (await live.record(pk))["email"] == email

    # a new record without its required field, and another with a wrong type: both listed
    doc = await fetch_doc(live)
    new_a, new_b = f"s-{secrets.token_hex(3)}", f"s-{secrets.token_hex(3)}"

    def create(records: Map) -> None:
        records[f"contacts/{new_a}"] = Map({"id": new_a})
        records[f"contacts/{new_b}"] = Map({"id": new_b, "email": "b@example.com", "phone": 7})

    r, _ = await post_update(live, doc, create)
    assert r.status_code == 422 and r.json()["code"] == "invalid_record", r.text
    assert sorted(e["path"] for e in r.json()["errors"]) == sorted(
        [f"/contacts/{new_a}", f"/contacts/{new_b}/phone"]
    )
    assert await live.state_vector() == before
    assert await live.record(new_a) is None and await live.record(new_b) is None


async def test_typed_updates_that_fit_the_schema_are_taken(live):
    doc = await fetch_doc(live)
    some = sorted(k for k in doc.get("records", type=Map) if k.startswith("contacts/"))[0]
    pk, new = some.split("/", 1)[1], f"ok-{secrets.token_hex(3)}"

    def change(records: Map) -> None:
        records[some]["email"] = "fits@example.com"
        records[some]["phone"] = "12345"  # a string of digits where the schema says string
        records[some]["company_id"] = None
        records[f"contacts/{new}"] = Map({"id": new, "email": f"{new}@example.com"})

    r, _ = await post_update(live, doc, change)
    assert r.status_code == 200, r.text
    got = await live.record(pk)
    assert (got["email"], got["phone"], got["company_id"]) == ("fits@example.com", "12345", None)
    assert (await live.record(new))["email"] == f"{new}@example.com"
    # and over the WebSocket
    client = await live.editor()
    try:
        await client.edit(lambda r: r[some].__setitem__("phone", "67890"))
        await round_trip(client)
        assert (await live.record(pk))["phone"] == "67890"
        assert client.close_code is None
    finally:
        await client.close()


# ------------------------------------------------------------------ WebSocket


async def test_websocket_refusal_closes_1008_reaches_nobody_and_is_not_retried(live):
    before = await live.state_vector()
    sender, other = await live.editor(), await live.editor()
    try:
        some = f"contacts/{pks(sender)[0]}"
        email = sender.record(some)["email"]
        await sender.edit(lambda r: r[some].__setitem__("email", 98765))
        assert await sender.wait_closed() == 1008
        assert sender.close_reason == (
            f"invalid_record: {some}: email: 98765 is not of type 'string'"
        )
        await round_trip(other)  # anything broadcast to it has arrived by now
        assert other.record(some)["email"] == email  # never sent to the other client
        assert await live.state_vector() == before
        assert (await live.record(some.split("/", 1)[1]))["email"] == email
    finally:
        await sender.close()
        await other.close()

    # y-websocket reconnects and answers the server's step 1 with everything the server lacks:
    # the refused edit again. It is let be (no close, so no loop), and the document is unchanged.
    again = await live.editor()
    try:
        await again.send(STEP2 + write_message(sender.doc.get_update(await live.state_vector())))
        await round_trip(again)
        assert again.close_code is None
        assert await live.state_vector() == before
        # a later edit from that document builds on the refused one: it cannot be taken, and
        # the client is told so with the application code for "refused edit: reload it"
        refused = sender.doc.get_state()
        with sender.doc.transaction():
            sender.records[some]["first_name"] = "Later"
        await again.send(bytes([0, 2]) + write_message(sender.doc.get_update(refused)))
        assert await again.wait_closed() == 4422
        assert "email" in again.close_reason
    finally:
        await again.close()
    assert await live.state_vector() == before


async def test_a_refused_deletion_is_not_retried_and_other_step_2_replies_still_count(live):
    """A deletion moves no state vector: the refused one is recognized by what it deletes."""
    before = await live.state_vector()
    sender = await live.editor()
    try:
        some = f"contacts/{pks(sender)[1]}"
        await sender.edit(lambda r: r[some].pop("email"))  # required by the schema
        assert await sender.wait_closed() == 1008
        assert "'email' is a required property" in sender.close_reason
    finally:
        await sender.close()
    assert await live.state_vector() == before
    again = await live.editor()
    try:
        await again.send(STEP2 + write_message(sender.doc.get_update(await live.state_vector())))
        await round_trip(again)
        assert again.close_code is None
        assert "email" in await live.record(some.split("/", 1)[1])
        # another client's reply holding all of its deletions and a new edit is taken
        pk = pks(again)[2]
        with again.doc.transaction():
            again.records[f"contacts/{pk}"]["first_name"] = "StillTaken"
        await again.send(STEP2 + write_message(again.doc.get_update()))
        await round_trip(again)
        assert (await live.record(pk))["first_name"] == "StillTaken"
        assert again.close_code is None
    finally:
        await again.close()


async def test_a_long_reason_is_cut_to_123_bytes_of_utf8(live):
    client = await live.editor()
    try:
        key = "contacts/" + "é" * 80
        await client.edit(lambda r: r.__setitem__(key, Map({"id": "é" * 80})))
        assert await client.wait_closed() == 1008
        assert client.close_reason.startswith("invalid_record: contacts/éé")
        assert len(client.close_reason.encode()) <= 123
    finally:
        await client.close()


async def test_an_unmodified_y_websocket_client_is_refused_once_and_does_not_loop(live):
    """The issue's case: an unmodified ``yjs`` client sets a contact's email to the number
    98765. It is told why (1008), reconnects as README shows, and stays connected: one close,
    two connections, in a window where a loop would have made dozens."""
    observer = await live.editor()
    try:
        some = f"contacts/{pks(observer)[0]}"
        email = observer.record(some)["email"]
        before = await live.state_vector()
        plan = {"key": some, "field": "email", "value": 98765, "watch_ms": 4000}
        proc = await spawn_node(live, "refused.mjs", plan)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        assert proc.returncode == 0, (events, err.decode()[-2000:])
        closes = [e for e in events if e["event"] == "closed"]
        done = events[-1]
        assert closes[0]["code"] == 1008, events
        assert (
            closes[0]["reason"] == f"invalid_record: {some}: email: 98765 is not of type 'string'"
        )
        assert (done["closes"], done["connects"]) == (1, 2), events
        assert done["value"] == 98765  # still in its own document: README says what to do
        assert await live.state_vector() == before
        assert (await live.record(some.split("/", 1)[1]))["email"] == email
        assert observer.record(some)["email"] == email
    finally:
        await observer.close()
