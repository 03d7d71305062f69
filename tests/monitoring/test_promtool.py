"""promtool on prometheus/: the scrape config and the rule files are valid, and the rules' unit
tests (prometheus/tests/*.yml: for every alert, series that fire it and series that do not)
pass."""

from __future__ import annotations

import subprocess

import yaml

from tests.monitoring.tools import PROMETHEUS_CONFIG_DIR, binary


def promtool(*args: str) -> str:
    run = subprocess.run([str(binary("promtool")), *args], cwd=PROMETHEUS_CONFIG_DIR,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_config_is_valid_and_loads_the_rules():
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 2 rule files found" in out, out


def test_rules_are_valid():
    rules = sorted(p.name for p in (PROMETHEUS_CONFIG_DIR / "rules").glob("*.yml"))
    assert rules == ["alerts.yml", "recording.yml"]
    promtool("check", "rules", *(f"rules/{name}" for name in rules))


def test_rule_unit_tests_pass():
    tests = sorted(str(p.relative_to(PROMETHEUS_CONFIG_DIR))
                   for p in (PROMETHEUS_CONFIG_DIR / "tests").glob("*.yml"))  # fmt: skip
    assert tests
    out = promtool("test", "rules", *tests)
    assert out.count("SUCCESS") == len(tests), out


def test_every_alert_is_tested_firing_and_quiet_and_has_a_severity_and_a_runbook():
    groups = yaml.safe_load((PROMETHEUS_CONFIG_DIR / "rules" / "alerts.yml").read_text())
    alerts = [r for g in groups["groups"] for r in g["rules"] if "alert" in r]
    cases = [
        case
        for path in (PROMETHEUS_CONFIG_DIR / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    for alert in alerts:
        name = alert["alert"]
        assert name in firing, f"{name} has no promtool test where it fires"
        assert name in quiet, f"{name} has no promtool test where it stays quiet"
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["annotations"]["runbook_url"] == f"docs/metrics.md#{name.lower()}", name
        assert alert.get("for"), f"{name} has no `for:`"
