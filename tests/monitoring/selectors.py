"""The series selectors the dashboards and the rules use, as Prometheus's HTTP API takes them:
metric names (ours all start with ``seedos_``, the recorded ones with ``service:`` or
``connector:``, and ``up``) with their label matchers, Grafana's template variables in matchers
replaced by ``.+``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.conftest import ROOT

SELECTOR = re.compile(
    r"(?<![\w:])((?:seedos_|service:|connector:)[A-Za-z0-9_:]+|up(?=\{))(\{[^}]*\})?"
)
VARIABLE = re.compile(r"\$\{?\w+\}?")


def selectors_in(expr: str) -> set[str]:
    found = set()
    for name, matchers in SELECTOR.findall(expr):
        found.add(name + VARIABLE.sub(".+", matchers))
    return found


def dashboard_exprs(folder: Path = ROOT / "grafana" / "dashboards") -> list[str]:
    exprs = []
    for path in sorted(folder.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for inner in [panel, *panel.get("panels", [])]:
                exprs += [t["expr"] for t in inner.get("targets", [])]
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict):
                exprs.append(query["query"])
    return exprs


def rule_exprs(folder: Path = ROOT / "prometheus" / "rules") -> list[str]:
    return [
        rule["expr"]
        for path in sorted(folder.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def recorded_names(folder: Path = ROOT / "prometheus" / "rules") -> set[str]:
    return {
        rule["record"]
        for path in sorted(folder.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def all_selectors() -> set[str]:
    """Every selector of the dashboards and the rules (alerts included), and every recorded
    series, which must come out of its rule."""
    used = {s for expr in dashboard_exprs() + rule_exprs() for s in selectors_in(expr)}
    return used | recorded_names()


def metric_names() -> set[str]:
    """The raw metric names (not recorded ones) queried anywhere."""
    names = {re.match(r"[\w:]+", s).group(0) for s in all_selectors()}  # type: ignore[union-attr]
    return {n for n in names if n.startswith("seedos_")}
