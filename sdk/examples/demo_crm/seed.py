"""Synthetic but realistic contacts and companies, inserted in bulk (one transaction each)."""

from __future__ import annotations

import random
import secrets
from typing import Any

from . import store
from .store import COMPANIES, CONTACTS, Database, Transaction

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Ben", "Carla", "Chen", "Dana", "David", "Elena",
    "Emeka", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Julia",
    "Kenji", "Lara", "Leo", "Lina", "Marco", "Maya", "Mei", "Nadia", "Noah", "Olga", "Omar",
    "Paula", "Priya", "Rafael", "Rosa", "Sam", "Sofia", "Tariq", "Tom", "Uma", "Victor", "Wei",
    "Yara", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Almeida", "Andersen", "Bauer", "Chen", "Costa", "Dubois", "Eriksson", "Fischer",
    "Garcia", "Hansen", "Haddad", "Ivanova", "Jensen", "Kim", "Kowalski", "Lopez", "Martin",
    "Meyer", "Moreau", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen", "Patel", "Rossi",
    "Santos", "Schmidt", "Silva", "Singh", "Tanaka", "Torres", "Wagner", "Walker", "Yilmaz",
)  # fmt: skip
NAME_PARTS = (
    "Acme", "Apex", "Blue Harbor", "Brightline", "Cedar", "Copper", "Evergreen", "Granite",
    "Helios", "Ironwood", "Juniper", "Keystone", "Lumen", "Maple", "Meridian", "Northwind",
    "Orbit", "Pioneer", "Quarry", "Redwood", "Summit", "Tidal", "Vertex", "Willow",
)  # fmt: skip
NAME_SUFFIXES = (
    "Analytics", "Foods", "Health", "Labs", "Logistics", "Media", "Motors", "Partners",
    "Robotics", "Software", "Systems", "Textiles", "Travel", "Ventures",
)  # fmt: skip
INDUSTRIES = (
    "Software", "Healthcare", "Logistics", "Retail", "Manufacturing", "Media", "Finance",
    "Education", "Energy", "Travel",
)  # fmt: skip


def _ids(prefix: str, count: int) -> list[str]:
    """Ids sharing a random batch part, ascending, so the primary key index fills in order."""
    batch = prefix + secrets.token_hex(6)
    return [f"{batch}{n:08d}" for n in range(count)]


def company_rows(count: int, *, start: int, rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for n, record_id in enumerate(_ids(COMPANIES.id_prefix, count), start=start):
        name = f"{rng.choice(NAME_PARTS)} {rng.choice(NAME_SUFFIXES)}"
        domain = f"{name.lower().replace(' ', '')}{n}.example"
        rows.append((record_id, name, domain, rng.choice(INDUSTRIES)))
    return rows


def contact_rows(
    count: int, *, start: int, company_ids: list[str], rng: random.Random
) -> list[tuple[Any, ...]]:
    rows = []
    for n, record_id in enumerate(_ids(CONTACTS.id_prefix, count), start=start):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company_id = rng.choice(company_ids) if company_ids else None
        email = f"{first.lower()}.{last.lower()}.{n}@mail.example"
        phone = f"+1-555-{rng.randrange(1000):03d}-{rng.randrange(10000):04d}"
        rows.append((record_id, email, first, last, phone, company_id))
    return rows


async def seed(db: Database, *, contacts: int, companies: int) -> dict[str, int]:
    """Insert ``companies`` companies, then ``contacts`` contacts linked to live companies.

    Returns how many of each were inserted.
    """
    rng = random.Random()

    def run(tx: Transaction) -> dict[str, int]:
        inserted = {"companies": 0, "contacts": 0}
        if companies:
            rows = company_rows(companies, start=store.count(tx.conn, COMPANIES), rng=rng)
            inserted["companies"] = store.insert_many(tx, COMPANIES, rows)
        if contacts:
            company_ids = store.sample_ids(tx.conn, COMPANIES, limit=10_000)
            start = store.count(tx.conn, CONTACTS)
            rows = contact_rows(contacts, start=start, company_ids=company_ids, rng=rng)
            inserted["contacts"] = store.insert_many(tx, CONTACTS, rows)
        return inserted

    return await db.write(run)
