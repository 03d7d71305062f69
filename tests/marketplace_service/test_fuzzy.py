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


def _expected(query: list[str], rows: list[dict]) -> dict[int, float]:
    """Closeness by the definition (fuzzy.score) of those close enough, by position."""
    close = [fuzzy.score(query, fuzzy.title_words(r["name"], r["vendor"], r["category"]))
             for r in rows]  # fmt: skip
    return {k: c for k, c in enumerate(close) if c >= fuzzy.THRESHOLD}


def _ranked(vocabulary: fuzzy.Vocabulary, query: list[str], rows: list[dict]) -> dict[int, float]:
    return {k: c for c, k in vocabulary.rank(query, rows)}


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
        got, want = _ranked(vocabulary, query, candidates), _expected(query, candidates)
        assert got.keys() == want.keys(), query
        assert all(abs(got[k] - want[k]) < 1e-3 for k in want), query
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
    assert [k for _, k in vocabulary.rank(["zendsk"], [*catalog, new])] == [len(catalog)]


def test_a_republished_entry_does_not_lend_its_words_to_the_next_new_one():
    vocabulary = fuzzy.Vocabulary()
    catalog = _catalog()
    vocabulary.replace([(r["id"], r["name"], r["vendor"], r["category"]) for r in catalog])
    slack = catalog[0]
    vocabulary.add(slack["id"], "Slack", "Slack Technologies", "communication")  # a new version
    books = {"id": uuid.uuid4(), "name": "Quickbooks", "vendor": "Intuit", "category": "accounting"}
    vocabulary.add(books["id"], books["name"], books["vendor"], books["category"])
    assert [k for _, k in vocabulary.rank(["quikbooks"], [books])] == [0]
    assert vocabulary.rank(["slak"], [books]) == []
    assert [k for _, k in vocabulary.rank(["slak"], [slack])] == [0]
