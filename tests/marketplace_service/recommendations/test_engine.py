"""The scoring rules on hand-made statistics (no database): the next-install model, smoothing,
health, descriptions, and reasons whose weights are what their parts did to the score."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from marketplace_service.recommendations.engine import Profile, recommend
from marketplace_service.recommendations.model import (
    SIZE_BANDS,
    Item,
    ModelParams,
    TenantRow,
    build,
    fit_next_model,
)

WEEK = 7 * 86400


def _item(slug: str, description: str = "", *, featured: bool = False) -> Item:
    return Item(slug=slug, name=slug.title(), service=slug, category=None, vendor=None,
                description=description or f"{slug} connector", logo_url=None,
                featured=featured)  # fmt: skip


def _snapshot(tenants, items=None, health=(), params=None):
    """``tenants``: (industry, size, services oldest first)."""
    items = items or [_item(s) for s in ("alpha", "beta", "gamma", "delta")]
    rows = [TenantRow(i, s, tuple(services)) for i, s, services in tenants]
    return build(items=items, tenants=rows, health=health, built_at=datetime.now(UTC),
                 health_window_seconds=WEEK, params=params)  # fmt: skip


def _by_slug(items):
    return {i["slug"]: i for i in items}


def test_one_tenant_does_not_make_a_segment_rate():
    # the only "mining" tenant has gamma; everyone else (40) has alpha
    snap = _snapshot([("mining", 20, ["gamma"])] + [("retail", 20, ["alpha"])] * 40)
    items = _by_slug(recommend(snap, Profile("Mining", 25), set(), k=4))
    rate = next(r for r in items["gamma"]["reasons"] if r["kind"] == "segment")["rate"]
    # (1 + 10 x r) / 11 with r = the industry's own smoothed rate, (1 + 10 x 2/43) / 11: not 100%
    assert 0.15 < rate < 0.25
    assert "of mining companies of your size (11-50 employees)" in items["gamma"]["reason"]


def test_an_unknown_industry_falls_back_to_everyone():
    snap = _snapshot([("retail", 20, ["alpha"])] * 5)
    items = recommend(snap, Profile("aerospace", None), set(), k=2)
    assert items[0]["slug"] == "alpha"
    assert items[0]["reason"].endswith("of companies on the platform")


def test_never_an_installed_connector_whatever_k_and_unknown_services_ignored():
    snap = _snapshot([("retail", 20, ["alpha", "beta"])] * 5)
    items = recommend(snap, Profile("retail", 20), {"alpha", "gamma", "not-in-catalog"}, k=50)
    assert sorted(i["slug"] for i in items) == ["beta", "delta"]
    everything = {"alpha", "beta", "gamma", "delta"}
    assert recommend(snap, Profile(None, None), everything, k=5) == []


def test_few_failures_demote_little_many_demote_much():
    # each installed first, second and last alike (the order says nothing here)
    tenants = [("retail", 20, ["alpha", "beta", "gamma"][k:] + ["alpha", "beta", "gamma"][:k])
               for k in (0, 1, 2) for _ in range(4)]  # fmt: skip
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
    snap = _snapshot([("retail", 20, ["chatty"])] * 3 + [("retail", 20, [])] * 3, catalog)
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
    snap = _snapshot([("retail", 20, ["alpha", "gamma"])] * 4 + [("retail", 20, [])] * 4,
                     catalog)  # fmt: skip
    fresh = recommend(snap, Profile("retail", 20), set(), k=3)
    assert any(r["kind"] == "featured" for r in _by_slug(fresh)["beta"]["reasons"])
    later = recommend(snap, Profile("retail", 20), {"alpha"}, k=3)
    assert not any(r["kind"] == "featured" for i in later for r in i["reasons"])


def _odds(score: float) -> float:
    return score / (1.0 - score)


def test_co_installation_reasons_say_what_raised_or_lowered_the_score():
    # beta goes with alpha and with delta; gamma, as popular, is never installed with either
    tenants = ([("retail", 20, ["alpha", "beta"])] * 20 + [("retail", 20, ["delta", "beta"])] * 20
               + [("fintech", 20, ["gamma"])] * 40)  # fmt: skip
    snap = _snapshot(tenants)
    owned = {"alpha", "delta"}
    items = _by_slug(recommend(snap, Profile("retail", 20), owned, k=2))
    fresh = _by_slug(recommend(snap, Profile("retail", 20), set(), k=4))

    beta = next(r for r in items["beta"]["reasons"] if r["kind"] == "co_installed")
    assert beta["text"] == (
        "likely with Alpha and Delta: 100% of the 20 companies with Alpha use it (2.0x the usual"
        " rate); 100% of the 20 companies with Delta use it (2.0x the usual rate)"
    )
    assert beta["weight"] > 0 and beta["with_connectors"] == ["alpha", "delta"]
    assert items["beta"]["score"] > fresh["beta"]["score"]

    gamma = next(r for r in items["gamma"]["reasons"] if r["kind"] == "co_installed")
    assert gamma["text"].startswith("less likely with Alpha and Delta: under 1% of the 20")
    assert gamma["weight"] < 0
    assert items["gamma"]["score"] < fresh["gamma"]["score"]
    # the weights are what the connectors did: the log of the score's odds with them, less
    # without them (same profile; no featured entries, so nothing else changes)
    for slug, reason in (("beta", beta), ("gamma", gamma)):
        done = math.log(_odds(items[slug]["score"])) - math.log(_odds(fresh[slug]["score"]))
        assert reason["weight"] == pytest.approx(done, abs=0.01)

    # retail companies never install gamma: their segment lowers it, and says so
    segment = next(r for r in fresh["gamma"]["reasons"] if r["kind"] == "segment")
    assert segment["weight"] < 0
    # ... by what the profile did: the odds for this profile, less those for no profile
    nobody = _by_slug(recommend(snap, Profile(None, None), set(), k=4))
    done = math.log(_odds(fresh["gamma"]["score"])) - math.log(_odds(nobody["gamma"]["score"]))
    assert segment["weight"] == pytest.approx(done, abs=0.01)


def test_what_came_before_predicts_what_comes_next_in_that_direction():
    # tenants install alpha, then beta (never the other way round); gamma and delta alone
    tenants = [("retail", 20, ["alpha", "beta"])] * 30 + [("retail", 20, ["gamma"])] * 30
    tenants += [("retail", 20, ["delta"])] * 30
    # without stage rows: here every second install is beta, which a stage row would learn
    # as "second installs are beta" beside alpha's term; the connectors' terms are the subject
    snap = _snapshot(tenants, params=ModelParams(stage_rows=False))
    after_alpha = [i["slug"] for i in recommend(snap, Profile("retail", 20), {"alpha"}, k=3)]
    after_beta = _by_slug(recommend(snap, Profile("retail", 20), {"beta"}, k=3))
    assert after_alpha[0] == "beta"
    co = next(r for r in after_beta["alpha"]["reasons"] if r["kind"] == "co_installed")
    beta_after_alpha = _by_slug(recommend(snap, Profile("retail", 20), {"alpha"}, k=3))["beta"]
    assert beta_after_alpha["score"] > 1.25 * after_beta["alpha"]["score"]
    # the order-blind part (EASE's share) still says they go together
    assert co["weight"] > 0 and co["with_connectors"] == ["beta"]
    # with only the order model, beta says nothing about alpha at all
    ordered = _snapshot(tenants, params=ModelParams(set_weight=0.0, stage_rows=False))
    alpha = _by_slug(recommend(ordered, Profile("retail", 20), {"beta"}, k=3))["alpha"]
    beta = _by_slug(recommend(ordered, Profile("retail", 20), {"alpha"}, k=3))["beta"]
    nothing = _by_slug(recommend(ordered, Profile("retail", 20), set(), k=4))
    assert not any(r["kind"] == "co_installed" for r in alpha["reasons"])
    assert alpha["score"] <= nothing["alpha"]["score"]  # no help from beta
    assert beta["score"] > 2 * nothing["beta"]["score"]  # alpha makes beta likely next


@pytest.mark.parametrize(
    ("min_segment", "max_items", "paired", "set_weight", "stages"),
    [(1, 7, 200, 0.0, False), (5, 7, 200, 0.0, False), (1, 4, 200, 0.0, False),
     (1, 7, 3, 0.0, False), (5, 5, 3, 0.5, False), (1, 7, 200, 0.0, True),
     (5, 5, 3, 0.5, True)],
)  # fmt: skip
def test_the_counted_model_is_ridge_regression_on_the_examples(
    monkeypatch, min_segment, max_items, paired, set_weight, stages
):
    """X'X and X'Y counted from the sequences equal the ones of the example matrix: one row
    per install of a modelled connector, what the tenant had before it (modelled, within the
    first ``MAX_INSTALLS_PAIRED``), its profile rows and a constant -> it; plus EASE's share
    over the same connectors. Rare industries (below ``min_segment``), unknown sizes, a
    catalog past ``max_items``, long sequences cut short, a connector installed twice."""
    from marketplace_service.recommendations import model as model_module

    monkeypatch.setattr(model_module, "MAX_INSTALLS_PAIRED", paired)
    rng = np.random.default_rng(3)
    n_items, industries = 7, ["a", "b", "c", None]
    bands = [*range(len(SIZE_BANDS)), None]
    sequences = []
    for _ in range(60):
        seq = list(rng.permutation(n_items)[: rng.integers(0, 7)])
        if seq and rng.random() < 0.1:
            seq.append(seq[0])  # installed twice: counts once, at its first install
        industry = industries[rng.choice(4, p=[0.45, 0.45, 0.05, 0.05])]
        sequences.append((seq, industry, bands[rng.integers(len(bands))]))
    params = ModelParams(item_ridge=3.0, profile_ridge=7.0, set_weight=set_weight,
                         set_ridge=2.0, min_segment=min_segment, max_items=max_items,
                         stage_rows=stages)  # fmt: skip
    model = fit_next_model(sequences, n_items, params)
    size, m = model.bias_row + 1, len(model.items)
    assert m == min(max_items, n_items)
    xs, ys, sets = [], [], []
    for seq, industry, band in sequences:
        seq = [i for i in list(dict.fromkeys(seq))[:paired] if model.row_of[i] >= 0]
        had = np.zeros(m)
        had[[model.row_of[i] for i in seq]] = 1.0
        sets.append(had)
        for k, target in enumerate(seq):
            x = np.zeros(size)
            x[model.rows(seq[:k], industry, band)] = 1.0
            y = np.zeros(m)
            y[model.row_of[target]] = 1.0
            xs.append(x)
            ys.append(y)
    x, y = np.array(xs), np.array(ys)
    ridge = np.full(size, params.profile_ridge)
    ridge[:m] = params.item_ridge
    ridge[model.bias_row] = 1e-3
    expected = np.linalg.solve(x.T @ x + np.diag(ridge), x.T @ y)
    if set_weight:
        g = np.array(sets).T @ np.array(sets) + 2.0 * np.eye(m)
        p = np.linalg.inv(g)
        b = np.eye(m) - p / np.diag(p)
        expected[:m] += set_weight * b
    assert model.examples == len(xs)
    if min_segment == 5:  # "c" (5% of 60 tenants) is too rare for a row of its own
        assert ("industry", "c") not in model.profile_row
    np.testing.assert_allclose(model.weights, expected, rtol=1e-4, atol=1e-6)


def test_figures_in_co_installation_reasons_agree_with_what_the_connector_did():
    """On random populations: a figure "(N.Nx the usual rate)" is above 1.0 when the named
    connectors raised the score and below it when they lowered it (as printed)."""
    import re

    rng = np.random.default_rng(11)
    slugs = [f"c{n}" for n in range(12)]
    checked = 0
    for _ in range(5):
        tenants = [("retail", 20, list(rng.choice(slugs, size=rng.integers(1, 6), replace=False)))
                   for _ in range(150)]  # fmt: skip
        snap = _snapshot(tenants, items=[_item(s) for s in slugs])
        for _ in range(20):
            owned = set(rng.choice(slugs, size=rng.integers(1, 4), replace=False))
            for item in recommend(snap, Profile("retail", 20), owned, k=8):
                for reason in item["reasons"]:
                    if reason["kind"] != "co_installed":
                        continue
                    for lift in re.findall(r"\((\d+\.\d)x the usual rate\)", reason["text"]):
                        checked += 1
                        if reason["weight"] > 0:
                            assert float(lift) > 1.0, reason
                        else:
                            assert float(lift) < 1.0, reason
    assert checked > 100


def test_the_first_of_competing_figures_is_the_order_when_the_overall_rate_disagrees():
    # beta is common, mostly installed first; a third of the companies with alpha add it after
    tenants = [("retail", 20, ["beta", "gamma"])] * 50 + [("retail", 20, ["alpha", "beta"])] * 25
    tenants += [("retail", 20, ["alpha", "delta"])] * 20 + [("retail", 20, ["alpha", "gamma"])] * 20
    snap = _snapshot(tenants, params=ModelParams(stage_rows=False))  # alpha's own term
    beta = _by_slug(recommend(snap, Profile("retail", 20), {"alpha"}, k=3))["beta"]
    co = next(r for r in beta["reasons"] if r["kind"] == "co_installed")
    # with alpha, beta is rarer than usual (38% against 65%): that figure would contradict
    # "likely"; what alpha's term learned is what came after it
    assert co["weight"] > 0
    assert (
        co["text"] == "likely with Alpha: 38% of the 65 companies with Alpha added it after Alpha"
    )


def test_a_size_band_the_model_counted_is_named_in_the_segment_reason():
    # industry x has no large tenants (so its prior cannot say "of your size"), but the model's
    # size-band row for 5,001+ employees counts: the reason says both
    tenants = [("x", 20, ["alpha", "beta"])] * 40 + [("y", 6000, ["gamma", "delta"])] * 40
    tenants += [("y", 20, ["alpha", "delta"])] * 40
    snap = _snapshot(tenants)
    items = _by_slug(recommend(snap, Profile("x", 6000), set(), k=4))
    gamma = next(r for r in items["gamma"]["reasons"] if r["kind"] == "segment")
    assert gamma["weight"] > 0
    assert gamma["text"] == ("used by 7% of x companies; by 87% of companies of your size"
                             " (5,001+ employees)")  # fmt: skip


def test_connectors_past_the_models_limit_still_rank_by_their_segment():
    tenants = [("retail", 20, ["alpha", "beta"])] * 10 + [("retail", 20, ["gamma"])] * 3
    snap = _snapshot(tenants, params=ModelParams(max_items=2))
    assert sorted(snap.model.items.tolist()) == [0, 1]  # alpha, beta: the most installed
    ranked = [i["slug"] for i in recommend(snap, Profile("retail", 20), {"alpha"}, k=3)]
    assert ranked == ["beta", "gamma", "delta"]  # gamma (3 installs) before delta (none)
