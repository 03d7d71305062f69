"""Shards without a database: where a key goes, new documents written directly, splits."""

from __future__ import annotations

import struct
import uuid
import zlib

from pycrdt import Doc, Map

from connector_service.sync import encode, splits
from connector_service.sync import records as rec
from connector_service.sync.layout import HASH_BITS, Layout, Shard, bits_for, key_hash

IID = uuid.uuid4()


def _shard(stream: str | None, bits: int = 0, slot: int = 0) -> Shard:
    return Shard(uuid.uuid4(), IID, stream, bits, slot)


def test_the_hash_is_crc32_of_the_utf8_key():
    assert key_hash("contacts/42") == zlib.crc32(b"contacts/42")
    assert key_hash("contacts/é") == zlib.crc32("contacts/é".encode())
    assert 0 <= key_hash("x/" + "y" * 1000) < 2**32


def test_bits_for_leaves_each_shard_at_most_the_fill_on_average():
    assert bits_for(0) == 0 and bits_for(256) == 0 and bits_for(257) == 1
    assert bits_for(1_000_000) == 12  # 1,000,000 / 2**12 = 244
    for n in (1, 100, 5000, 123_456, 10**7):
        bits = bits_for(n)
        assert n / 2**bits <= 256 and (bits == 0 or n / 2 ** (bits - 1) > 256)
    assert bits_for(1_000_000, 512) == 11


def test_a_layout_places_every_key_in_exactly_one_live_shard():
    # an uneven cover: one half split once more, the other not
    shards = [_shard("contacts", 1, 0), _shard("contacts", 2, 2), _shard("contacts", 2, 3)]
    layout = Layout(IID, [*shards, _shard("companies")])
    for i in range(2000):
        k = f"contacts/{i}"
        holders = [s for s in shards if s.holds(k)]
        assert len(holders) == 1
        assert layout.route(k) == holders[0]
        # the documented rule, as a client computes it
        h = zlib.crc32(k.encode())
        assert h >> (HASH_BITS - holders[0].bits) == holders[0].slot
    assert layout.route("companies/1").stream == "companies"
    assert layout.route("deals/1") is None  # a stream without shards yet
    root = _shard(None)
    assert Layout(IID, [root]).route("deals/1") == root  # the root holds every stream


def _record(i: int) -> dict:
    return {"id": f"c_{i}", "email": f"p{i}@example.com", "name": "Zoë ✓" * (i % 3),
            "score": i * 0.5, "big": 2**40 + i, "tiny": 1e-300 * i, "ok": i % 2 == 0,
            "gone": None, "nested": '{"a": [1, 2]}', "long": "x" * (200 + i)}  # fmt: skip


def _as_doc(update: bytes) -> dict:
    doc = Doc()
    records = doc.get("records", type=Map)
    doc.apply_update(update)
    return records.to_py()


def test_a_shard_written_directly_loads_as_pycrdt_builds_it():
    load = encode.Load()
    fields = {f"contacts/c_{i}": rec.to_fields(_record(i)) for i in range(300)}
    entries = [next(encode.entries(load.entry(k, f))) for k, f in fields.items()]
    update, state_vector = encode.shard_update(load, entries)
    built = Doc()
    records = built.get("records", type=Map)
    with built.transaction():
        for k, f in fields.items():
            records[k] = Map(f)
    assert _as_doc(update) == records.to_py()  # numbers come back as floats in both
    doc = Doc()
    doc.get("records", type=Map)
    doc.apply_update(update)
    assert doc.get_state() == state_vector
    # it is an ordinary document: edits and merges work on it
    other = Doc()
    other_records = other.get("records", type=Map)
    other.apply_update(update)
    with other.transaction():
        other_records["contacts/c_1"]["email"] = "new@example.com"
    doc.apply_update(other.get_update(doc.get_state()))
    assert doc.get("records", type=Map)["contacts/c_1"]["email"] == "new@example.com"
    assert encode.shard_update(load, []) == (b"\x00\x00", b"\x00")


def test_a_value_holding_the_placeholder_is_kept_in_the_plain_form():
    load = encode.Load()
    # the 8 bytes of this float are the placeholder itself
    bad = struct.unpack(">d", load.placeholder)[0]
    entry = next(encode.entries(load.entry("contacts/x", {"id": "x", "v": bad, "w": "a"})))
    assert entry[3] & encode.PLAIN
    update, _ = encode.shard_update(load, [entry])
    found = _as_doc(update)["contacts/x"]
    assert found["w"] == "a" and struct.pack(">d", found["v"]) == load.placeholder


def test_a_load_client_id_cannot_make_a_placeholder_found_twice():
    for _ in range(200):
        placeholder = encode.Load().placeholder
        assert placeholder[2:5] == b"\xff\xff\xff"  # never in UTF-8
        # no border: no proper prefix is also a suffix, so occurrences never overlap
        assert all(placeholder[:n] != placeholder[-n:] for n in range(1, len(placeholder)))


def test_deletions_and_later_reports_win_in_a_load():
    load = encode.Load()
    chunk = b"".join([
        load.entry("contacts/1", {"id": "1", "v": "old"}),
        load.entry("contacts/2", {"id": "2"}),
        load.entry("contacts/1", {"id": "1", "v": "new"}),
        encode.Load.deletion("contacts/2"),
    ])  # fmt: skip
    latest = {e[0]: e for e in encode.entries(chunk)}
    update, _ = encode.shard_update(load, latest.values())
    assert _as_doc(update) == {"contacts/1": {"id": "1", "v": "new"}}


def test_a_root_splits_into_streams_and_a_stream_shard_into_its_halves():
    doc = Doc()
    records = doc.get("records", type=Map)
    with doc.transaction():
        for i in range(700):
            records[f"contacts/{i}"] = Map({"id": str(i)})
        for i in range(20):
            records[f"companies/{i}"] = Map({"id": str(i)})
    made = splits.children(_shard(None), records, fill=512)
    by = {(c.stream, c.bits, c.slot): c for c in made}
    assert set(by) == {("companies", 0, 0), ("contacts", 1, 0), ("contacts", 1, 1)}
    assert sum(c.records for c in made) == 720
    together = {}
    for child in made:
        found = _as_doc(child.update)
        assert all(Shard(IID, IID, child.stream, child.bits, child.slot).holds(k) for k in found)
        together.update(found)
    assert together == records.to_py()
    # a stream shard splits at least once more, further when far over the bound
    half = _shard("contacts", 1, 1)
    held = Doc()
    held_records = held.get("records", type=Map)
    held.apply_update(by[("contacts", 1, 1)].update)
    more = splits.children(half, held_records, fill=100)
    assert {c.bits for c in more} == {3} and {c.slot for c in more} == {4, 5, 6, 7}
    assert sum(c.records for c in more) == by[("contacts", 1, 1)].records
