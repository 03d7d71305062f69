"""The Markdown tables of docs/recommendations-evaluation.md and the README, from the JSON that
``bench/recommendations.py --json`` writes::

    .venv/bin/python bench/recs/markdown.py results.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

SPLITS = {"random": "one install hidden at random", "last": "each tenant's last install hidden",
          "temporal": "the last four months after a cut in time"}  # fmt: skip


TIMES = "\u00d7"  # the multiplication sign


def ci(value: list[float] | tuple[float, float], digits: int = 3) -> str:
    mean, half = value
    if half is None or (isinstance(half, float) and math.isnan(half)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def scenario_table(name: str, s: dict[str, Any]) -> str:
    lines = [
        "| ranker | precision@5 | recall@10 | NDCG@10 | coverage@10 | P@5, 0 installs "
        "| P@5, 1 install | P@5, 5+ installs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ranker, row in s["rankers"].items():
        bold = ranker == "engine"
        cells = [row["precision@5"], row["recall@10"], row["ndcg@10"]]
        text = [ci(c) for c in cells]
        if bold:
            text = [f"**{t}**" for t in text]
        slices = [ci(row[k]) if k in row else "-"
                  for k in ("precision@5 [0]", "precision@5 [1]", "precision@5 [5+]")]  # fmt: skip
        label = f"**{ranker}**" if bold else ranker
        lines.append(f"| {label} | {' | '.join(text)} | {row['coverage@10'][0]:.2f} | "
                     f"{' | '.join(slices)} |")  # fmt: skip
    return "\n".join(lines)


def _ratio(value: list[float] | None) -> str:
    return ci(value, 2) + TIMES if value else "-"


def summary_table(summary: dict[str, Any], scenarios: dict[str, tuple[str, str]]) -> str:
    lines = [
        "| population (split) | engine P@5 | best baseline P@5 | engine ÷ best baseline "
        "(shipped defaults) | engine NDCG@10 | best baseline NDCG@10 | engine ÷ popular in "
        "segment, 0-1 installs (0 installs) | ceiling P@5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        split = scenarios[name][1]
        best = s["best_baseline"]
        engine, base = s["rankers"]["engine"], s["rankers"][best]
        ceiling = next((row for r, row in s["rankers"].items() if r.startswith("ceiling")), None)
        lines.append(
            f"| {name} ({split}) | {ci(engine['precision@5'])} | {ci(base['precision@5'])} "
            f"({best}) | **{_ratio(s['ratio'])}** ({_ratio(s['ratio_shipped'])}) | "
            f"{ci(engine['ndcg@10'])} | {ci(base['ndcg@10'])} | {_ratio(s['cold_ratio'])} "
            f"({_ratio(s['new_tenant_ratio'])}) | "
            f"{ci(ceiling['precision@5']) if ceiling else '-'} |"
        )
    return "\n".join(lines)


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from recommendations import SCENARIOS

    print(summary_table(data["quality"], SCENARIOS))
    for name, s in data["quality"].items():
        generator, split = SCENARIOS[name]
        print(f"\n#### {name}: the `{generator}` population, {SPLITS[split]}\n")
        print(scenario_table(name, s))
        params = s["rankers"]["engine"].get("params")
        if params:
            print(f"\nThe engine's parameters chosen on validation, by seed: {params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
