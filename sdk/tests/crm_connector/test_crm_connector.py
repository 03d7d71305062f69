"""The example connector against the demo CRM, both real processes: conformance, and the HTTP
client's retry policy against the CRM's injected faults. Each test runs twice: against the
hand-written example, and against the demo CRM's definition run by the generic connector."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from seedos_sdk.testing import conformance_suite, serve

SDK = Path(__file__).resolve().parents[2]
KEY = "crm-test-key"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def crm_url(tmp_path_factory):
    env = {"DEMO_CRM_DATA_DIR": str(tmp_path_factory.mktemp("crm")), "DEMO_CRM_API_KEYS": KEY}
    with serve("examples.demo_crm.app:create_app", factory=True, cwd=SDK, env=env) as served:
        yield served.url


@pytest.fixture(scope="module", params=["example", "definition"])
def connector_url(request):
    """The hand-written example, and the same connector as a definition run by the generic
    connector (examples/definitions/demo-crm.yaml): every test here runs against both."""
    if request.param == "example":
        with serve("examples.crm_connector.connector:app", cwd=SDK) as served:
            yield served.url
        return
    env = {  # the demo CRM is on loopback, which the egress rule must list
        "SEEDOS_DEFINITIONS": str(SDK / "examples" / "definitions"),
        "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    with serve("seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK,
               env=env) as served:  # fmt: skip
        listing = httpx.get(served.url + "/definitions", timeout=10).json()
        found = [d for d in listing["items"] if d["name"] == "demo-crm-declarative"]
        assert found and not listing["refused"], listing
        yield served.url + found[0]["path"]


@pytest.fixture(scope="module")
def crm_config(crm_url):
    return {"base_url": crm_url, "page_size": 7}


@pytest.fixture
def crm(crm_url):
    with httpx.Client(base_url=crm_url, headers={"X-API-Key": KEY}, timeout=30) as client:
        client.delete("/admin/faults")
        client.delete("/admin/stats")
        yield client
        client.delete("/admin/faults")


TestConformance = conformance_suite(
    url_fixture="connector_url",
    config="crm_config",
    credentials={"api_key": KEY},
    write_samples={
        "contacts": [
            {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
            {"email": "alan@example.com", "first_name": "Alan", "last_name": "Turing"},
        ],
        "companies": [{"name": "Analytical Engines Ltd", "domain": "engines.example"}],
    },
)


def _read(connector_url, crm_config, cursor=None, stream="contacts"):
    body = {"config": crm_config, "credentials": {"api_key": KEY}, "cursor": cursor}
    return httpx.post(f"{connector_url}/streams/{stream}/read", json=body, timeout=60)


def _attempts(crm, path="/v1/contacts"):
    return crm.get("/admin/stats").json()["requests"].get(path, 0)


def test_a_deleted_contact_is_reported_as_deleted(crm, connector_url, crm_config):
    contact = crm.post("/v1/contacts", json={"email": "gone@example.com"}).json()
    cursor = None
    while True:  # read to the end
        page = _read(connector_url, crm_config, cursor).json()
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    crm.delete(f"/v1/contacts/{contact['id']}")
    page = _read(connector_url, crm_config, cursor).json()
    assert page["deleted"] == [contact["id"]] and page["records"] == []


def test_429_with_retry_after_waits_that_long_then_succeeds(crm, connector_url, crm_config):
    crm.post("/admin/faults", json={"status": 429, "count": 1, "retry_after": 2,
                                    "paths": "/v1/contacts"})  # fmt: skip
    start = time.monotonic()
    r = _read(connector_url, crm_config)
    elapsed = time.monotonic() - start
    assert r.status_code == 200, r.text
    assert 1.9 <= elapsed < 4.0, elapsed
    assert _attempts(crm) == 2


def test_500s_are_retried_to_the_limit_then_reported_retryable(crm, connector_url, crm_config):
    crm.post("/admin/faults", json={"status": 500, "count": 50, "paths": "/v1/contacts"})
    r = _read(connector_url, crm_config)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["category"] == "retryable" and problem["retryable"] is True
    assert _attempts(crm) == 5  # the client's default max_attempts


def test_a_400_is_not_retried(crm, connector_url, crm_config):
    crm.post("/admin/faults", json={"status": 400, "count": 1, "paths": "/v1/contacts"})
    r = _read(connector_url, crm_config)
    assert r.status_code == 422 and r.json()["category"] == "permanent"
    assert r.json()["code"] == "upstream_rejected"
    assert _attempts(crm) == 1


def test_bad_action_input_never_reaches_the_crm(crm, connector_url, crm_config):
    body = {"config": crm_config, "credentials": {"api_key": KEY},
            "input": {"email": "not-an-email"}}  # fmt: skip
    r = httpx.post(f"{connector_url}/actions/create_contact", json=body, timeout=30)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    assert _attempts(crm) == 0


def test_wrong_key_is_a_permanent_auth_failure(crm, connector_url, crm_config):
    body = {"config": crm_config, "credentials": {"api_key": "wrong"}}
    r = httpx.post(f"{connector_url}/check", json=body, timeout=30)
    assert r.status_code == 401 and r.json()["code"] == "auth_failed"
    assert r.json()["category"] == "permanent"
    assert _attempts(crm) == 1


async def test_a_slow_answer_times_out_and_is_retried(crm, crm_url):
    from seedos_sdk import HttpClient, RetryableError

    crm.post("/admin/faults", json={"latency_ms": 600, "count": 1, "paths": "/v1/contacts"})
    async with HttpClient(base_url=crm_url, headers={"X-API-Key": KEY}, timeout=0.3) as http:
        r = await http.get("/v1/contacts", params={"limit": 1})
    assert r.status_code == 200
    assert _attempts(crm) == 2  # the timed-out one and the retry
    crm.post("/admin/faults", json={"latency_ms": 600, "count": 5, "paths": "/v1/contacts"})
    async with HttpClient(
        base_url=crm_url, headers={"X-API-Key": KEY}, timeout=0.3, max_attempts=2
    ) as http:
        with pytest.raises(RetryableError) as info:
            await http.get("/v1/contacts")
    assert info.value.code == "timeout"


def test_logs_never_contain_the_credentials(crm, crm_url, tmp_path):
    secret = "sk-live-" + "s3cr3t" * 4
    log = tmp_path / "connector.log"
    crm.post("/admin/faults", json={"status": 503, "count": 2, "paths": "/v1/contacts"})
    with serve("examples.crm_connector.connector:app", cwd=SDK, log_path=log) as connector:
        body = {"config": {"base_url": crm_url}, "credentials": {"api_key": secret}}
        r = httpx.post(f"{connector.url}/check", json=body, timeout=60)
        assert r.status_code == 401  # retried the 503s, then the wrong key was refused
    text = log.read_text()
    assert "retrying" in text and "contract_error" in text  # the path was logged ...
    assert secret not in text and "s3cr3t" not in text  # ... without the credential


def test_oauth2_mode_reads_with_an_access_token_and_a_revoked_one_is_refused(
    start_crm, auth_server
):
    """The connector in oauth2 mode, the demo CRM checking tokens by introspection against a
    real authorization server (oidc-provider)."""
    crm_server = start_crm(
        env={
            "DEMO_CRM_INTROSPECTION_URL": auth_server.endpoints["introspection_endpoint"],
            "DEMO_CRM_INTROSPECTION_CLIENT_ID": "demo-crm",
            "DEMO_CRM_INTROSPECTION_CLIENT_SECRET": "demo-crm-secret",
            "DEMO_CRM_REQUIRED_SCOPE": "crm.read",
        }
    )
    crm_server.admin("POST", "/admin/seed", body={"contacts": 12, "companies": 0})
    env = {"CRM_CONNECTOR_AUTH": "oauth2"}
    with serve("examples.crm_connector.connector:app", cwd=SDK, env=env) as connector:
        manifest = httpx.get(connector.url + "/manifest").json()
        assert manifest["auth"]["scheme"] == "oauth2" and "api_key" not in manifest["secret_fields"]
        token = auth_server.token(scope="crm.read crm.write")
        body = {"config": {"base_url": crm_server.base_url}, "credentials": {"access_token": token}}
        r = httpx.post(f"{connector.url}/streams/contacts/read", json=body, timeout=60)
        assert r.status_code == 200 and len(r.json()["records"]) == 12
        # a token the authorization server never issued is refused (the CRM caches positive
        # introspections for up to 30 s, so a just-revoked token could still pass for a while)
        body["credentials"] = {"access_token": "not-a-token"}
        r = httpx.post(f"{connector.url}/check", json=body, timeout=60)
        assert r.status_code == 401 and r.json()["code"] == "auth_failed"
        assert r.json()["category"] == "permanent"
