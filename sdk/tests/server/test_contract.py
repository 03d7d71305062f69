"""The contract the SDK serves from a definition, through a real process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seedos_sdk.testing import serve

HERE = Path(__file__).parent
PROBLEM = "application/problem+json"
ENV = {"config": {"region": "eu"}, "credentials": {"api_key": "k"}}


@pytest.fixture(scope="module")
def sample():
    with serve("sample_connector:app", cwd=HERE) as served:
        yield served.url


@pytest.fixture(scope="module")
def sample_debug():
    with serve("sample_connector:app", cwd=HERE, env={"SAMPLE_DEBUG": "1"}) as served:
        yield served.url


def test_manifest_describes_the_definition(sample):
    m = httpx.get(sample + "/manifest").json()
    assert m["name"] == "sample" and m["version"] == "0.3.0" and m["auth"] == {"scheme": "api_key"}
    assert m["secret_fields"] == ["api_key"]
    streams = {s["name"]: s for s in m["streams"]}
    assert streams["items"]["primary_key"] == "id" and streams["items"]["writable"] is True
    assert streams["broken"]["writable"] is False
    assert m["actions"][0]["name"] == "charge" and m["actions"][0]["idempotent"] is False


def test_read_pages_follow_the_cursor(sample):
    cursor, seen = None, []
    while True:
        page = httpx.post(f"{sample}/streams/items/read", json={**ENV, "cursor": cursor}).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [f"r{i:03d}" for i in range(25)] and cursor == "25"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/check", b"{nope", 422, "invalid_json"),
        ("/check", b'{"config": {"region": "mars"}}', 422, "validation_failed"),
        ("/check", b'{"config": []}', 422, "validation_failed"),
        ("/streams/nope/read", b"{}", 404, "unknown_stream"),
        (
            "/streams/items/read",
            b'{"config": {"region": "eu"}, "cursor": 7}',
            422,
            "validation_failed",
        ),
        ("/streams/broken/write", b'{"config": {"region": "eu"}}', 422, "not_writable"),
        (
            "/streams/items/write",
            b'{"config": {"region": "eu"}, "upserts": [{"id": "a"}]}',
            422,
            "validation_failed",
        ),
        (
            "/streams/items/write",
            b'{"config": {"region": "eu"}, "upserts": [{"id": "", "name": "x"}]}',
            422,
            "validation_failed",
        ),
        (
            "/actions/charge",
            b'{"config": {"region": "eu"}, "input": {"amount": 0}}',
            422,
            "validation_failed",
        ),
        ("/actions/charge", b'{"config": {"region": "eu"}}', 422, "validation_failed"),
        ("/actions/nope", b'{"config": {"region": "eu"}, "input": {}}', 404, "unknown_action"),
    ],
)
def test_bad_requests_are_problems(sample, path, body, status, code):
    r = httpx.post(sample + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["code"] == code and problem["category"] == "permanent"
    assert problem["retryable"] is False


def test_unknown_route_is_a_problem(sample):
    r = httpx.get(sample + "/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_errors_carry_their_category(sample):
    r = httpx.post(f"{sample}/streams/broken/read", json={"config": {"region": "us"}})
    assert r.status_code == 503 and r.headers["retry-after"] == "3"
    assert r.json()["category"] == "retryable" and r.json()["retryable"] is True
    r = httpx.post(f"{sample}/streams/flaky/read", json=ENV)
    assert r.status_code == 422
    assert r.json()["code"] == "account_suspended" and r.json()["category"] == "permanent"


def test_records_are_checked_in_debug_mode_only(sample, sample_debug):
    ok = httpx.post(f"{sample}/streams/broken/read", json=ENV)
    assert ok.status_code == 200  # production: records are passed through unchecked
    r = httpx.post(f"{sample_debug}/streams/broken/read", json=ENV)
    assert r.status_code == 500 and r.json()["code"] == "invalid_output"


def test_idempotency_key(sample):
    key = {"Idempotency-Key": "charge-1"}
    body = {**ENV, "input": {"amount": 5}}
    first = httpx.post(f"{sample}/actions/charge", json=body, headers=key)
    again = httpx.post(f"{sample}/actions/charge", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = httpx.post(
        f"{sample}/actions/charge", json={**ENV, "input": {"amount": 6}}, headers=key
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    fresh = httpx.post(
        f"{sample}/actions/charge", json=body, headers={"Idempotency-Key": "charge-2"}
    )
    assert fresh.json()["output"]["receipt"] == first.json()["output"]["receipt"] + 1


def test_metrics_count_contract_requests(sample):
    httpx.post(f"{sample}/streams/items/read", json=ENV)
    text = httpx.get(sample + "/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"seedos_connector_request_duration_seconds", "seedos_connector_records_read"} <= names
    assert 'seedos_connector_records_read_total{connector="sample",stream="items"}' in text


def test_an_invalid_secret_is_never_echoed(sample):
    """A config error names the field and the rule, never the credential's value."""
    secret = "sk-live-DO-NOT-ECHO"
    r = httpx.post(
        f"{sample}/check", json={"config": {"region": "eu"}, "credentials": {"api_key": 12345}}
    )
    assert r.status_code == 422 and "/api_key" in r.text and "12345" not in r.text
    r = httpx.post(
        f"{sample}/check",
        json={"config": {"region": "mars", "api_key": secret}, "credentials": {"api_key": secret}},
    )
    assert r.status_code == 422 and secret not in r.text
