"""The typo ranking's vectorized scores against the plain definition, on a small catalog."""

from __future__ import annotations

import random
import uuid

from marketplace_service.catalog import fuzzy

NAMES = ["Slack", "Salesforce", "Maple Docs", "Apex Pay", "Nova CRM 12", "Forms Hub", "Sheets"]
VENDORS = ["Slack Technologies", "Salesforce Inc.", "Maple Labs", None, "Nova Systems", "", None]
CATEGORIES = ["communication", "crm", "productivity", "payments", "crm", None, "productivity"]


def _catalog() -> list[dict]:
    return [
        {"id": uuid.uuid4(), "name": n, "vendor": v, "category": c}
        for n, v, c in zip(NAMES, VENDORS, CATEGORIES, strict=True)
    ]


def _expected(query: list[str], rows: list[dict], order: list[int]) -> list[int]:
    """Closeness by the definition (fuzzy.score), then catalog order."""
    close = [fuzzy.score(query, fuzzy.title_words(r["name"], r["vendor"], r["category"]))
             for r in rows]  # fmt: skip
    ranked = sorted(range(len(rows)), key=lambda k: (-close[k], order[k]))
    return [k for k in ranked if close[k] >= fuzzy.THRESHOLD]


def test_rank_matches_the_definition_for_known_and_new_entries():
    catalog = _catalog()
    vocabulary = fuzzy.Vocabulary()
    vocabulary.replace([(r["id"], r["name"], r["vendor"], r["category"]) for r in catalog])
    late = {"id": uuid.uuid4(), "name": "Slackbot", "vendor": "Bots", "category": "communication"}
    rng = random.Random(3)
    queries = (["slak"], ["mape"], ["salesforse"], ["nova", "crn"], ["nova", "zzzz"], ["form"],
               ["maple", "pay"], ["zzzz"])  # fmt: skip
    for query in queries:
        candidates = [*catalog, late]
        rng.shuffle(candidates)
        order = [catalog.index(c) if c in catalog else len(catalog) for c in candidates]
        assert vocabulary.rank(query, candidates) == _expected(query, candidates, order), query
    assert vocabulary.rank(["slak"], []) == []


def test_corrections_and_a_published_entry():
    vocabulary = fuzzy.Vocabulary()
    catalog = _catalog()
    vocabulary.replace([(r["id"], r["name"], r["vendor"], r["category"]) for r in catalog])
    assert "slack" in vocabulary.corrections(["slak"])
    assert vocabulary.corrections(["ab"]) == []  # too short to tell a typo
    assert vocabulary.corrections(["a", "b", "c", "slak"]) == []  # not a short query
    assert "12" not in vocabulary.words  # digits are not words a typo stands for
    entry = uuid.uuid4()
    vocabulary.add(entry, "Zendesk", "Zendesk Inc.", "support")
    assert "zendesk" in vocabulary.corrections(["zendsk"])
    new = {"id": entry, "name": "Zendesk", "vendor": "Zendesk Inc.", "category": "support"}
    assert vocabulary.rank(["zendsk"], [*catalog, new]) == [len(catalog)]
