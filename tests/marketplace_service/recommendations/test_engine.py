"""The scoring rules on hand-made statistics (no database): smoothing, health, descriptions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from marketplace_service.recommendations.engine import Profile, probability, recommend
from marketplace_service.recommendations.model import Item, TenantRow, build

WEEK = 7 * 86400


def _item(slug: str, description: str = "", *, featured: bool = False) -> Item:
    return Item(slug=slug, name=slug.title(), service=slug, category=None, vendor=None,
                description=description or f"{slug} connector", logo_url=None,
                featured=featured)  # fmt: skip


def _snapshot(tenants, items=None, health=()):
    items = items or [_item(s) for s in ("alpha", "beta", "gamma", "delta")]
    rows = [TenantRow(i, s, frozenset(services)) for i, s, services in tenants]
    return build(items=items, tenants=rows, health=health, built_at=datetime.now(UTC),
                 health_window_seconds=WEEK)  # fmt: skip


def _by_slug(items):
    return {i["slug"]: i for i in items}


def test_one_tenant_does_not_make_a_segment_rate():
    # the only "mining" tenant has gamma; everyone else (40) has alpha
    snap = _snapshot([("mining", 20, {"gamma"})] + [("retail", 20, {"alpha"})] * 40)
    items = _by_slug(recommend(snap, Profile("Mining", 25), set(), k=4))
    rate = next(r for r in items["gamma"]["reasons"] if r["kind"] == "segment")["rate"]
    # (1 + 10 x r) / 11 with r = the industry's own smoothed rate, (1 + 10 x 2/43) / 11: not 100%
    assert 0.15 < rate < 0.25
    assert "of mining companies of your size (11-50 employees)" in items["gamma"]["reason"]


def test_an_unknown_industry_falls_back_to_everyone():
    snap = _snapshot([("retail", 20, {"alpha"})] * 5)
    items = recommend(snap, Profile("aerospace", None), set(), k=2)
    assert items[0]["slug"] == "alpha"
    assert items[0]["reason"].endswith("of companies on the platform")


def test_never_an_installed_connector_whatever_k_and_unknown_services_ignored():
    snap = _snapshot([("retail", 20, {"alpha", "beta"})] * 5)
    items = recommend(snap, Profile("retail", 20), {"alpha", "gamma", "not-in-catalog"}, k=50)
    assert sorted(i["slug"] for i in items) == ["beta", "delta"]
    everything = {"alpha", "beta", "gamma", "delta"}
    assert recommend(snap, Profile(None, None), everything, k=5) == []


def test_few_failures_demote_little_many_demote_much():
    tenants = [("retail", 20, {"alpha", "beta", "gamma"})] * 10
    health = [("alpha", 2, 1), ("beta", 400, 200)]  # 1 of 2 calls; half of 400
    snap = _snapshot(tenants, health=health)
    items = _by_slug(recommend(snap, Profile("retail", 20), set(), k=4))
    assert items["gamma"]["score"] > items["alpha"]["score"] > items["beta"]["score"]
    assert not any(r["kind"] == "health" for r in items["alpha"]["reasons"])
    assert items["beta"]["reasons"][-1]["text"] == (
        "ranked lower: 50% of its calls failed in the last 7 days (200 of 400)"
    )
    # odds x ((1 - r) / 0.98) ** 3, r smoothed as if 50 more calls at 2%: 201 of 450
    assert items["beta"]["reasons"][-1]["weight"] == -1.715


def test_the_description_lifts_matching_entries_and_names_the_words():
    catalog = [_item("ledgerly", "Double-entry bookkeeping and invoices for accountants"),
               _item("chatty", "Team chat with channels and calls"),
               _item("sheety", "Spreadsheets in the browser")]  # fmt: skip
    snap = _snapshot([("retail", 20, {"chatty"})] * 3 + [("retail", 20, set())] * 3, catalog)
    match = snap.text.match("We send invoices and do our bookkeeping ourselves")
    plain = [i["slug"] for i in recommend(snap, Profile("retail", 20), set(), k=3)]
    described = _by_slug(recommend(snap, Profile("retail", 20), set(), k=3, match=match))
    assert plain == ["chatty", "ledgerly", "sheety"]  # ties by name
    assert list(described) == ["chatty", "ledgerly", "sheety"]
    assert described["ledgerly"]["score"] > 4 * described["sheety"]["score"]
    assert not any(r["kind"] == "description" for r in described["sheety"]["reasons"])
    reason = next(r for r in described["ledgerly"]["reasons"] if r["kind"] == "description")
    assert reason["text"] in ("matches your description (bookkeeping, invoice)",
                              "matches your description (invoice, bookkeeping)")  # fmt: skip
    assert snap.text.match("the and of") is None


def test_featured_only_for_a_tenant_with_nothing_installed():
    catalog = [_item("alpha"), _item("beta", featured=True), _item("gamma")]
    snap = _snapshot([("retail", 20, {"alpha", "gamma"})] * 4 + [("retail", 20, set())] * 4,
                     catalog)  # fmt: skip
    fresh = recommend(snap, Profile("retail", 20), set(), k=3)
    assert any(r["kind"] == "featured" for r in _by_slug(fresh)["beta"]["reasons"])
    later = recommend(snap, Profile("retail", 20), {"alpha"}, k=3)
    assert not any(r["kind"] == "featured" for i in later for r in i["reasons"])


def test_co_installation_reasons_say_what_raised_or_lowered_the_score():
    # beta goes with alpha and with delta; gamma, as popular, is never installed with either
    tenants = ([("retail", 20, {"alpha", "beta"})] * 20 + [("retail", 20, {"delta", "beta"})] * 20
               + [("fintech", 20, {"gamma"})] * 40)  # fmt: skip
    snap = _snapshot(tenants)
    owned = {"alpha", "delta"}
    items = _by_slug(recommend(snap, Profile("retail", 20), owned, k=2))
    fresh = _by_slug(recommend(snap, Profile("retail", 20), set(), k=4))

    beta = next(r for r in items["beta"]["reasons"] if r["kind"] == "co_installed")
    assert beta["text"].startswith("often installed with Alpha and Delta: 100% of the 20")
    assert beta["weight"] > 0 and beta["with_connectors"] == ["alpha", "delta"]

    gamma = next(r for r in items["gamma"]["reasons"] if r["kind"] == "co_installed")
    assert gamma["text"].startswith("rarely installed with Alpha and Delta: under 1% of the 20")
    assert gamma["weight"] < 0
    assert items["gamma"]["score"] < fresh["gamma"]["score"]
    # the score's own term: damping 1/sqrt(2) x the two log lifts
    lifts = [(0 + 1) / (20 * 40 / 80 + 1)] * 2
    assert gamma["weight"] == round(sum(math.log(x) for x in lifts) / math.sqrt(2), 3)

    # retail companies never install gamma: their segment lowers it, and says so
    segment = next(r for r in fresh["gamma"]["reasons"] if r["kind"] == "segment")
    assert segment["weight"] < 0


def test_the_score_of_hopeless_odds_does_not_overflow():
    assert probability(-1000.0) == 0.0 and probability(1000.0) == 1.0
    assert probability(0.0) == 0.5
