"""The recommendation evaluation harness (bench/recs/): its metrics, splits, intervals and
baselines on hand-made cases whose answers are worked out here, and one small end-to-end run."""

from __future__ import annotations

import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from recs import evaluate, rankers  # noqa: E402
from recs.evaluate import Case  # noqa: E402
from recs.generators import GENERATORS, Tenant  # noqa: E402


class Fixed:
    """A ranker that always answers the same list."""

    name, grid = "fixed", [{}]

    def __init__(self, ranked: list[str]) -> None:
        self.ranked = ranked

    def fit(self, rows, train, params) -> None:
        pass

    def top(self, case: Case, k: int) -> list[str]:
        return [s for s in self.ranked if s not in case.visible][:k]


def _case(visible=(), relevant=("a",)) -> Case:
    return Case(None, 10, None, tuple(visible), frozenset(relevant))


def test_precision_recall_and_ndcg_as_defined():
    ranked = [f"i{n}" for n in range(20)]
    cases = [
        _case(relevant={"i0"}),  # hit at 1
        _case(relevant={"i6"}),  # hit at 7: not in the top 5
        _case(relevant={"i1", "i12"}, visible={"i0"}),  # i0 seen: i1 at 1, i12 at 12 (out)
    ]
    r = evaluate.score(Fixed(ranked), cases, n_items=20)
    assert r.precision5 == pytest.approx((1 / 5 + 0 + 1 / 5) / 3)
    assert r.recall10 == pytest.approx((1 + 1 + 1 / 2) / 3)
    ideal_two = 1 + 1 / math.log2(3)
    assert r.ndcg10 == pytest.approx((1 + 1 / math.log2(8) + 1 / ideal_two) / 3)
    assert r.coverage == pytest.approx(11 / 20)  # i0-i9 and i10 (the third case's tenth)
    assert r.slices["0"]["cases"] == 2 and r.slices["1"]["cases"] == 1
    assert r.slices["1"]["precision@5"] == pytest.approx(1 / 5)


def test_intervals_are_students_t_over_seeds():
    mean, half = evaluate.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(evaluate.interval([0.5])[1])


def _tenant(events) -> Tenant:
    return Tenant(uuid.uuid4(), "x", 10, list(events))


def test_the_last_split_hides_each_tenants_last_install_and_validation_the_one_before():
    tenants = [_tenant([("a", 1.0), ("b", 2.0), ("c", 3.0)]), _tenant([("d", 5.0)])]
    protocol = evaluate.protocol("last", 10.0)
    rng = np.random.default_rng(0)
    test = protocol.test(tenants, rng)
    assert [c.relevant for c in test.cases] == [{"c"}, {"d"}]
    assert [c.visible for c in test.cases] == [("a", "b"), ()]
    validation = protocol.validation(test.train, rng)
    # made from the training data alone: the test's hidden installs are nowhere in it
    assert [c.relevant for c in validation.cases] == [{"b"}]
    assert [t.installed for t in validation.train] == [["a"], []]


def test_the_temporal_split_knows_only_what_came_before_the_cut():
    t = _tenant([("a", 100.0), ("b", 650.0), ("c", 700.0), ("d", 729.0)])
    late = _tenant([("e", 640.0)])
    protocol = evaluate.protocol("temporal", 720.0)  # test: [600, 720), validation: [480, 600)
    test = protocol.test([t, late], np.random.default_rng(0))
    assert [(c.visible, c.relevant) for c in test.cases] == [(("a",), {"b", "c"}), ((), {"e"})]
    assert [x.installed for x in test.train] == [["a"], []]
    assert protocol.validation(test.train, np.random.default_rng(0)).cases == []


def test_ease_and_item_knn_on_a_matrix_worked_by_hand():
    rows = [{"slug": s} for s in "abc"]
    train = [_tenant([("a", 1), ("b", 2)])] * 3 + [_tenant([("a", 1), ("c", 2)])]
    knn = rankers.ItemKNN(normalised=False)
    knn.fit(rows, train, {"neighbours": None})
    assert knn.top(_case(visible={"a"}), 2) == ["b", "c"]  # co-occurrence 3 against 1
    ease = rankers.EASE()
    ease.fit(rows, train, {"lambda": 1.0})
    x = np.array([[1, 1, 0]] * 3 + [[1, 0, 1]], dtype=float)
    p = np.linalg.inv(x.T @ x + np.eye(3))
    b = np.eye(3) - p / np.diag(p)
    np.testing.assert_allclose(ease.b, b, atol=1e-9)


def test_segment_popularity_uses_the_label_as_written_and_falls_back_to_everyone():
    rows = [{"slug": s} for s in "abc"]
    train = [Tenant(uuid.uuid4(), "FinTech", 10, [("c", 1)]) for _ in range(3)]
    train += [Tenant(uuid.uuid4(), "retail", 10, [("a", 1), ("b", 2)]) for _ in range(5)]
    ranker = rankers.PopularInSegment()
    ranker.fit(rows, train, {"segment": "industry", "pseudo": 0.0})
    assert ranker.top(Case(" fintech ", 10, None, (), frozenset()), 1) == ["c"]
    assert ranker.top(Case("Fin-tech", 10, None, (), frozenset()), 1) == ["a"]  # unknown label


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generators_make_timed_installs_of_catalog_entries(name):
    rows, tenants = GENERATORS[name](200, np.random.default_rng(1))
    slugs = {r["slug"] for r in rows}
    for t in tenants:
        assert t.events and {s for s, _ in t.events} <= slugs
        assert len({s for s, _ in t.events}) == len(t.events)  # no connector twice
        days = [d for _, d in t.events]
        assert days == sorted(days)
    if name == "sequential":  # the ceiling's chances: a distribution the last install is in
        for t in tenants:
            if (chances := t.extra["next"]) is not None:
                assert sum(chances.values()) == pytest.approx(1.0)
                assert chances[t.events[-1][0]] > 0


def test_a_small_run_tunes_every_ranker_and_scores_the_engine_through_the_route_function():
    import recommendations as bench  # bench/recommendations.py

    run = bench.run_one("sequential", 400, seed=3)
    names = set(run["rankers"])
    assert {*bench.BASELINES, "engine", "engine (shipped defaults)"} <= names
    assert len(bench.BASELINES) == 7
    engine = run["rankers"]["engine"]
    assert engine["params"] in rankers.Engine(descriptions=False).grid
    assert 0.0 < engine["precision@5"] <= 0.2 and 0.0 < engine["ndcg@10"] <= 1.0
    summary = bench.summarise([run, bench.run_one("sequential", 400, seed=4)])
    ratio, half = summary["sequential"]["ratio"]
    assert ratio > 0 and half >= 0
