"""SEEDOS_GATEWAY_RATE_LIMITS and its neighbours, read from the environment as a gateway starting
up reads them: what applies to whom, and nonsense refused with a message that says why."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.limits.config import DEFAULT_CREDENTIAL, DEFAULT_TENANT, Limit
from gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def development(monkeypatch, tmp_path):
    """Development mode, its secrets made in a folder of the test's own."""
    monkeypatch.setenv("SEEDOS_ENV", "development")
    monkeypatch.setenv("SEEDOS_DATA_DIR", str(tmp_path))


def settings(monkeypatch, **env: str) -> GatewaySettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return GatewaySettings()


def test_defaults(monkeypatch):
    s = settings(monkeypatch)
    assert s.rate_limits.resolve("acme", "viewer") == (DEFAULT_TENANT, DEFAULT_CREDENTIAL)
    assert s.rate_limit_redis_url is None and s.tenant_max_concurrent == 100


def test_roles_and_tenant_overrides(monkeypatch):
    config = {
        "tenant": {"quota": 600, "window_seconds": 60},
        "credential": {"quota": 100, "window_seconds": 60},
        "roles": {"viewer": {"quota": 10, "window_seconds": 60}},
        "tenants": {
            "big": {"tenant": None, "credential": {"quota": 1000}},
            "small": {"roles": {"admin": {"quota": 5, "window_seconds": 3600}}},
        },
    }
    s = settings(monkeypatch, SEEDOS_GATEWAY_RATE_LIMITS=json.dumps(config),
                 SEEDOS_RATE_LIMIT_REDIS_URL="redis://127.0.0.1:6390/0",
                 SEEDOS_GATEWAY_TENANT_MAX_CONCURRENT="7")  # fmt: skip
    limits = s.rate_limits
    general, per_minute = Limit(quota=600, window_seconds=60), Limit(quota=100, window_seconds=60)
    assert limits.resolve("acme", "admin") == (general, per_minute)
    assert limits.resolve("acme", "viewer") == (general, Limit(quota=10, window_seconds=60))
    # the override's credential limit beats the general per-role one; no tenant limit
    assert limits.resolve("big", "viewer") == (None, Limit(quota=1000, window_seconds=1))
    assert limits.resolve("small", "admin") == (general, Limit(quota=5, window_seconds=3600))
    assert limits.resolve("small", "viewer") == (general, Limit(quota=10, window_seconds=60))
    assert limits.resolve(None, "none") == (general, per_minute)
    assert s.tenant_max_concurrent == 7
    assert "6390" not in repr(s)  # the URL may carry a password


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SEEDOS_GATEWAY_RATE_LIMITS", "{not json", "rate_limits"),
        ("SEEDOS_GATEWAY_RATE_LIMITS", '{"credential": {"quota": 0}}', "greater than or equal to 1"),
        ("SEEDOS_GATEWAY_RATE_LIMITS", '{"credential": {"quota": 5, "window_seconds": 0}}',
         "greater than or equal to 1"),
        ("SEEDOS_GATEWAY_RATE_LIMITS", '{"roles": {"owner": {"quota": 5}}}', "owner"),
        ("SEEDOS_GATEWAY_RATE_LIMITS", '{"credentials": {"quota": 5}}', "Extra inputs"),
        ("SEEDOS_GATEWAY_RATE_LIMITS", '{"tenants": {"Not A Slug": {}}}', "not a tenant slug"),
        ("SEEDOS_RATE_LIMIT_REDIS_URL", "http://127.0.0.1:6379", "redis, rediss or unix"),
        ("SEEDOS_GATEWAY_TENANT_MAX_CONCURRENT", "0", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_nonsense_refuses_to_start(monkeypatch, name, value, says):
    with pytest.raises(Exception) as refused:  # bad JSON: pydantic-settings SettingsError
        settings(monkeypatch, **{name: value})
    assert says in str(refused.value)
    assert isinstance(refused.value, ValidationError) or "error parsing value" in str(refused.value)
