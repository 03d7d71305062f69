from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from common.settings import CommonSettings
from gateway.settings import GatewaySettings


def test_production_refuses_missing_or_weak_secrets(monkeypatch, tmp_path):
    monkeypatch.delenv("SEEDOS_INTERNAL_TOKEN_KEY", raising=False)
    with pytest.raises(ValidationError, match="required outside development"):
        CommonSettings(env="production", data_dir=tmp_path)
    with pytest.raises(ValidationError, match="at least 32"):
        CommonSettings(env="production", internal_token_key="short", data_dir=tmp_path)
    assert not (tmp_path / "secrets.json").exists()


def test_development_generates_secrets_once_with_mode_0600(monkeypatch, tmp_path):
    monkeypatch.delenv("SEEDOS_INTERNAL_TOKEN_KEY", raising=False)
    first = CommonSettings(env="development", data_dir=tmp_path).internal_token_key
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = GatewaySettings(env="development", data_dir=tmp_path).internal_token_key
    assert first is not None and again is not None
    assert first.get_secret_value() == again.get_secret_value()
    assert len(first.get_secret_value()) >= 32


def test_common_names_are_shared_and_service_names_prefixed(monkeypatch, tmp_path):
    key = "k" * 40
    monkeypatch.setenv("SEEDOS_INTERNAL_TOKEN_KEY", key)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    monkeypatch.setenv("SEEDOS_GATEWAY_UPSTREAM_TIMEOUT_SECONDS", "3.5")
    s = GatewaySettings(env="production")
    assert s.internal_token_key.get_secret_value() == key
    assert s.dsn == "postgresql://u:p@h/db"
    assert s.upstream_timeout_seconds == 3.5
    assert "p@h" not in repr(s)
    monkeypatch.setenv("SEEDOS_GATEWAY_API_KEY_CACHE_TTL_SECONDS", "30")
    with pytest.raises(ValidationError):
        GatewaySettings(env="production")  # revocation must take effect within 5 s
