"""Category counts from memory (catalog/facets.py): the same counts as SQL, and current."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import random
import secrets
import time
import uuid

import asyncpg

from common import db
from common.roles import Role
from marketplace_service.catalog import fuzzy, repository, service
from marketplace_service.catalog.facets import Facets, Reading, term
from marketplace_service.catalog.repository import Filters
from tests.support import make_tenant

STOP_WORDS = ["in", "as", "for", "the", "a", "to"]


async def _entry(conn: asyncpg.Connection, word: str, category: str) -> dict:
    raw = {
        "slug": f"facets-{word}", "name": f"Facets {word.title()}", "category": category,
        "description": f"Counts {word} records", "auth_scheme": "api_key", "scopes": [],
        "logo_url": None, "setup_guide_url": None, "is_featured": False, "vendor": "Facets Inc",
        "config_schema": {"type": "object"}, "allow_multiple": False,
    }  # fmt: skip
    entry = service.demo_entry(raw)
    assert await repository.upsert(conn, entry) is None
    return entry


async def test_in_memory_counts_are_the_sql_counts(dsn):
    """Random queries of the catalog's own words (whole, as prefixes of 1 to 5 letters, stop
    words, digits), under random filters including a tenant's installs: the index gives the
    counts repository.category_counts gives, and the typo candidates (of random title words)
    repository.fuzzy_candidates gives, in the same order."""
    tenant = await make_tenant(dsn, role=Role.viewer)
    conn = await db.connect(dsn)
    try:
        entries = await conn.fetch("SELECT id, slug, name, description FROM marketplace_connectors")
        rng = random.Random(5)
        levels = random.Random(7)  # the verification filter's own, so the rest draws as before
        for row in rng.sample(list(entries), 6):  # installs of the tenant's own, disabled
            await conn.execute(
                "INSERT INTO integration_connectors (tenant_id, marketplace_connector_id,"
                " connector_name, service_name, status) VALUES ($1, $2, $3, $3, 'disabled')",
                tenant.tenant_id, row["id"], row["slug"],
            )  # fmt: skip
        words = sorted({w for r in entries for w in fuzzy.words(f"{r['name']} {r['description']}")})
        reading = Reading.read(await repository.facet_rows(conn))
        titles = sorted({w for r in entries for w in fuzzy.title_words(r["name"]) if w.isalpha()})
        compared = candidates = 0
        for _ in range(400):
            typed = []
            for _ in range(rng.randint(1, 3)):
                word = rng.choice(words + STOP_WORDS + ["2", "zzqx"])
                typed.append(word[: rng.randint(1, 5)] if rng.random() < 0.5 else word)
            terms = await service.tsterms(conn, typed)
            parsed = [term(t) for t in terms]
            filters = Filters(
                tenant_id=tenant.tenant_id,
                auth_scheme=rng.choice([None, "oauth2", "api_key", "basic", "none"]),
                featured=rng.choice([None, True, False]),
                installed=rng.choice([None, True, False]),
                verification=levels.choice([None, None, None, "verified", "checked", "described"]),
            )
            query = " & ".join(f"({t})" for t in terms) or None
            expected = await repository.category_counts(conn, filters, query=query)
            if None in parsed:  # several lexemes (a phrase): left to SQL by design
                continue
            mine = (
                None if filters.installed is None
                else (filters.installed, await repository.installed_entries(conn, tenant.tenant_id))
            )  # fmt: skip
            got = reading.counts(
                parsed, auth_scheme=filters.auth_scheme, featured=filters.featured,
                installed=mine, verification=filters.verification,
            )  # fmt: skip
            assert got == expected, (typed, terms, filters)
            compared += 1

            # typo candidates: title words, under the same filters, not matching the query
            corrected = sorted(rng.sample(titles, rng.randint(1, 6)))
            limit = rng.choice([3, 40, 1000])
            sql = await repository.fuzzy_candidates(
                conn, filters, words=corrected, query=query or "", limit=limit
            )
            lexemes = [term(t)[0] for t in await service._normalized(conn, corrected)]
            slots = reading.typo_candidates(
                lexemes, parsed, auth_scheme=filters.auth_scheme, featured=filters.featured,
                installed=mine, limit=limit, verification=filters.verification,
            )  # fmt: skip
            assert [reading.ids[s] for s in slots] == [r["id"] for r in sql], (corrected, terms)
            candidates += len(sql)
        assert compared > 350 and candidates > 150
    finally:
        await conn.close()


async def _until(predicate, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_counts_follow_the_catalog_and_fall_back_to_sql_when_unsure(dsn, database):
    vocabulary = fuzzy.Vocabulary()
    facets = Facets(vocabulary)
    name = f"seedos-facets-{secrets.token_hex(4)}"
    keeper = asyncio.create_task(facets.keep_current(database, dsn, application_name=name))
    word = "zorblax" + secrets.token_hex(3)

    def counts() -> dict[str, int]:
        reading = facets.current
        assert reading is not None
        return reading.counts([(word, True)], auth_scheme=None, featured=None, installed=None)

    conn = await db.connect(dsn)
    try:
        await _until(lambda: facets.current is not None, "a first reading")
        assert counts() == {} and "facets" not in vocabulary.words

        # a change made elsewhere (another replica's publish): notified, read again
        entry = await _entry(conn, word, "analytics")
        await _until(lambda: facets.current is not None and counts() == {"analytics": 1},
                     "the new entry counted")  # fmt: skip
        assert "facets" in vocabulary.words  # its title words: a typo of its name finds it
        assert vocabulary.version == await repository.catalog_version(conn)  # not read twice
        # a change made here is known at once, before the notification
        facets.changed()
        assert facets.current is None
        await _until(lambda: facets.current is not None, "read again after a local change")

        # listening lost (the connection killed): unsure, so no reading, until listening again
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1", name,
        )  # fmt: skip
        assert killed == 1
        await _until(lambda: facets.current is None, "unsure once the listener is gone", 5)
        await _until(lambda: facets.current is not None, "listening and read again")

        await conn.execute("DELETE FROM marketplace_connectors WHERE slug = $1", entry["slug"])
        await _until(lambda: facets.current is not None and counts() == {},
                     "the removed entry no longer counted")  # fmt: skip
    finally:
        await conn.execute("DELETE FROM marketplace_connectors WHERE slug = $1", f"facets-{word}")
        await conn.close()
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        gc.unfreeze()  # each reading froze the heap (settle_heap): not this test process's


def test_only_single_lexemes_are_counted_from_memory():
    assert term("'connector':*") == ("connector", True)
    assert term("'a'") == ("a", False)
    assert term("'googl':* <-> 'sheet':*") is None  # a phrase: SQL
    assert term("'it''s'") is None  # printed escaped: SQL
    reading = Reading.read([
        (uuid.uuid4(), "crm", "oauth2", True, ["pay", "paypal", "payz\U0010ffff"], "PayPal",
         "PayPal", ["paypal"], "described"),
        (uuid.uuid4(), None, "api_key", False, ["pa", "pax"], "Pax", "Pax Inc", ["pax", "inc"],
         None),
    ])  # fmt: skip
    count = functools.partial(reading.counts, auth_scheme=None, featured=None, installed=None)
    assert count([("pay", True)]) == {"crm": 1}
    assert count([("pa", True)]) == {"crm": 1, "": 1}
    assert count([("pa", False)]) == {"": 1}
    assert count([("payz\U0010ffff", True)]) == {"crm": 1}
    assert count([("pa", True)], auth_scheme="basic") == {}
    assert count([("pa", True)], verification="described") == {"crm": 1}
    assert count([("pa", True)], verification="verified") == {}  # no entry has it
    typos = functools.partial(reading.typo_candidates, auth_scheme=None, featured=None,
                              installed=None, limit=10)  # fmt: skip
    assert typos(["pax", "paypal"], []).tolist() == [0, 1]  # no query: nothing excluded
    assert typos(["pax", "paypal"], [("pay", True)]).tolist() == [1]
    assert typos(["pax", "paypal"], [], auth_scheme="oauth2").tolist() == [0]
    assert typos(["pax", "paypal"], [], verification="described").tolist() == [0]
