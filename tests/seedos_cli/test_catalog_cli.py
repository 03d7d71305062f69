"""``seedos catalog list`` as an operator runs it (a real process against the session's database):
every entry with its verification level, whether it runs and its note; filtered by level and by
category; another level refused."""

from __future__ import annotations

import asyncio
import re
import secrets
import string

from marketplace_service.catalog import repository, service
from tests.seedos_cli.test_cli import seedos
from tests.support import connected

NOTE = "Written from the provider's API documentation; not checked against a description."
# (suffix, category, level, endpoint)
ENTRIES = [
    ("alpha", "crm", "verified", "http://127.0.0.1:9"),
    ("bravo", "crm", "described", None),
    ("charlie", "analytics", "described", "http://127.0.0.1:9"),
    ("delta", "crm", None, None),
]


async def _levelled(dsn: str) -> str:
    """Four entries under a category of their own per test run; the word they share."""
    word = "clilevels" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    async with connected(dsn) as conn:
        for suffix, category, level, endpoint in ENTRIES:
            raw = {
                "slug": f"{word}-{suffix}", "name": f"{word.title()} {suffix.title()}",
                "description": "Listed by the CLI", "logo_url": None,
                "category": f"{word}-{category}", "vendor": "Levels Inc",
                "auth_scheme": "api_key", "scopes": [], "setup_guide_url": None,
                "is_featured": False, "allow_multiple": True,
                "config_schema": {"type": "object"},
            }  # fmt: skip
            entry = service.demo_entry(raw) | {
                "verification": level, "verification_note": NOTE if level == "described" else None,
                "endpoint_url": endpoint,
            }  # fmt: skip
            assert await repository.upsert(conn, entry) is None
    return word


def _rows(stdout: str, word: str) -> list[list[str]]:
    """The listed entries of this test: slug, name, level, runs, note (columns are two spaces
    apart; a name has one)."""
    return [re.split(r"\s{2,}", line.strip(), maxsplit=4)
            for line in stdout.splitlines() if line.startswith(f"{word}-")]  # fmt: skip


async def test_catalog_list_with_levels_filters_and_refusals(dsn):
    word = await _levelled(dsn)
    try:
        every = await asyncio.to_thread(seedos, "catalog", "list", dsn=dsn)
        header = every.stdout.splitlines()[0].split()
        assert header == ["SLUG", "NAME", "LEVEL", "RUNS", "NOTE"]
        assert _rows(every.stdout, word) == [
            [f"{word}-alpha", f"{word.title()} Alpha", "verified", "yes"],
            [f"{word}-bravo", f"{word.title()} Bravo", "described", "no", NOTE],
            [f"{word}-charlie", f"{word.title()} Charlie", "described", "yes", NOTE],
            [f"{word}-delta", f"{word.title()} Delta", "-", "no"],
        ]
        # the platform's catalog: levels and notes from its definitions and verification.json
        stripe = next(line for line in every.stdout.splitlines() if line.startswith("stripe "))
        assert re.search(r"\sverified\s+(yes|no)\s+Passes the conformance suite", stripe)
        postgresql = next(
            line for line in every.stdout.splitlines() if line.startswith("postgresql ")
        )
        assert re.search(r"\s-\s+(yes|no)\s+Not declarative: ", postgresql)
        total = re.search(r"^(\d+) entries: (\d+) verified, (\d+) checked, (\d+) described,"
                          r" (\d+) not rated; (\d+) run", every.stdout.splitlines()[-1])  # fmt: skip
        assert total, every.stdout.splitlines()[-1]
        listed, *levels, runs = map(int, total.groups())
        assert listed == sum(levels) == len(every.stdout.splitlines()) - 2 and runs <= listed

        described = await asyncio.to_thread(
            seedos, "catalog", "list", "--verification", "described", dsn=dsn
        )
        assert [r[0] for r in _rows(described.stdout, word)] == [f"{word}-bravo", f"{word}-charlie"]
        levels = {re.split(r"\s{2,}", line)[2] for line in described.stdout.splitlines()[1:-1]}
        assert levels == {"described"}
        assert re.search(r"entries: 0 verified, 0 checked, \d+ described, 0 not rated",
                         described.stdout)  # fmt: skip

        crm = await asyncio.to_thread(
            seedos, "catalog", "list", "--category", f"{word}-crm", dsn=dsn
        )
        assert [r[0] for r in _rows(crm.stdout, word)] == [
            f"{word}-alpha", f"{word}-bravo", f"{word}-delta"
        ]  # fmt: skip
        assert crm.stdout.splitlines()[-1] == (
            "3 entries: 1 verified, 0 checked, 1 described, 1 not rated; 1 run (have an endpoint)"
        )
        both = await asyncio.to_thread(
            seedos, "catalog", "list", "--verification", "described", "--category",
            f"{word}-crm", dsn=dsn,
        )  # fmt: skip
        assert [r[0] for r in _rows(both.stdout, word)] == [f"{word}-bravo"]
        assert both.stdout.splitlines()[-1].startswith("1 entry: ")
        nothing = await asyncio.to_thread(
            seedos, "catalog", "list", "--category", f"{word}-none", dsn=dsn
        )
        assert nothing.stdout.splitlines()[1:] == [
            "0 entries: 0 verified, 0 checked, 0 described, 0 not rated; 0 run (have an endpoint)"
        ]

        refused = await asyncio.to_thread(
            seedos, "catalog", "list", "--verification", "unverified", dsn=dsn, check=False
        )
        assert refused.returncode == 2 and "unverified" in refused.stderr
    finally:
        async with connected(dsn) as conn:
            await conn.execute("DELETE FROM marketplace_connectors WHERE slug LIKE $1", f"{word}-%")


def test_catalog_list_has_help(dsn):
    out = seedos("catalog", "list", "--help", dsn=dsn).stdout
    assert "--verification" in out and "--category" in out and "verified" in out
    assert "Usage" in seedos("catalog", "--help", dsn=dsn).stdout
