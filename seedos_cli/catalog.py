"""``seedos catalog list``: the catalog's entries and how far each is known to work, read straight
from the database (marketplace_service's table), as a table for an operator's terminal."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

import asyncpg

from marketplace_service.catalog import repository

NOT_RATED = "-"


class Level(StrEnum):
    """The verification levels (marketplace_service/catalog/definitions.py says how each is
    earned)."""

    verified = "verified"
    checked = "checked"
    described = "described"


async def entries(
    conn: asyncpg.Connection, *, verification: Level | None, category: str | None
) -> list[dict[str, Any]]:
    """Every entry (of the level and the category, when given) by name."""
    rows = await repository.levels(
        conn, verification=verification.value if verification else None, category=category
    )
    return [dict(r) for r in rows]


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The lines to print: a header, one line per entry (slug, name, level, whether it runs:
    it has an endpoint, and the note in full), and a summary."""
    slug_width = max([len("SLUG"), *(len(r["slug"]) for r in rows)])
    name_width = max([len("NAME"), *(len(r["name"]) for r in rows)])
    lines = [f"{'SLUG':{slug_width}}  {'NAME':{name_width}}  {'LEVEL':9}  {'RUNS':4}  NOTE"]
    for r in rows:
        level = r["verification"] or NOT_RATED
        runs = "yes" if r["deployed"] else "no"
        lines.append(
            f"{r['slug']:{slug_width}}  {r['name']:{name_width}}  {level:9}  {runs:4}  "
            f"{r['verification_note'] or ''}".rstrip()
        )
    lines.append(summary(rows))
    return lines


def summary(rows: list[dict[str, Any]]) -> str:
    """``44 entries: 2 verified, 9 checked, 8 described, 25 not rated; 20 run``."""
    levels = Counter(r["verification"] for r in rows)
    counted = [f"{levels[level.value]} {level.value}" for level in Level]
    counted.append(f"{levels[None]} not rated")
    runs = sum(1 for r in rows if r["deployed"])
    noun = "entry" if len(rows) == 1 else "entries"
    return f"{len(rows)} {noun}: {', '.join(counted)}; {runs} run (have an endpoint)"
