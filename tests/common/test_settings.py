from __future__ import annotations

import json
import stat

import pytest
from pydantic import ValidationError

from common import service_keys
from common.crypto import KeyRing
from common.settings import CommonSettings
from connector_service.app import create_app as create_connector
from connector_service.settings import ConnectorServiceSettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from marketplace_service.settings import MarketplaceSettings
from seedos_cli.deployment_keys import ServiceKeys


def test_production_refuses_missing_or_weak_secrets(tmp_path):
    with pytest.raises(ValueError, match="SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY required"):
        create_gateway(GatewaySettings(env="production", data_dir=tmp_path))
    with pytest.raises(
        ValueError, match=r"SEEDOS_INTERNAL_PUBLIC_KEYS, SEEDOS_IDEMPOTENCY_KEY required"
    ):
        create_connector(ConnectorServiceSettings(
            env="production", data_dir=tmp_path, credential_keys=KeyRing.generate().to_json()
        ))  # fmt: skip
    with pytest.raises(ValidationError, match="at least 32"):
        CommonSettings(env="production", idempotency_key="short", data_dir=tmp_path)
    with pytest.raises(ValidationError, match="not an Ed25519 private JWK"):
        GatewaySettings(env="production", internal_signing_key="{}", data_dir=tmp_path)
    public_only = json.dumps(service_keys.generate("gateway").as_dict(private=False))
    with pytest.raises(ValidationError, match="Ed25519 private JWK"):
        GatewaySettings(env="production", internal_signing_key=public_only, data_dir=tmp_path)
    with pytest.raises(ValidationError, match="no longer used"):
        CommonSettings(env="production", legacy_internal_token_key="k" * 40, data_dir=tmp_path)
    with pytest.raises(ValidationError, match="exceeds the maximum lifetime"):
        CommonSettings(env="production", internal_token_ttl_seconds=400, data_dir=tmp_path)
    # the CLI needs no service's keys
    assert CommonSettings(env="production", data_dir=tmp_path).internal_signing_key is None
    assert not (tmp_path / "secrets.json").exists()


def test_development_generates_secrets_once_with_mode_0600(tmp_path):
    gateway = GatewaySettings(env="development", data_dir=tmp_path)
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    market = MarketplaceSettings(env="development", data_dir=tmp_path)
    again = GatewaySettings(env="development", data_dir=tmp_path)
    # each service its own key; the same every time; everyone's public keys published
    assert gateway.signing_key().kid == again.signing_key().kid
    assert market.signing_key().kid != gateway.signing_key().kid
    published = ConnectorServiceSettings(env="development", data_dir=tmp_path).public_keys()
    assert published.issuer_of(gateway.signing_key().kid) == "gateway"
    assert published.issuer_of(market.signing_key().kid) == "marketplace_service"
    assert (
        ConnectorServiceSettings(env="development", data_dir=tmp_path).internal_signing_key is None
    )
    assert len(gateway.idempotency_key.get_secret_value()) >= 32


def test_common_names_are_shared_and_service_names_prefixed(monkeypatch, tmp_path):
    keys = ServiceKeys.generate().env()
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    monkeypatch.setenv("SEEDOS_GATEWAY_UPSTREAM_TIMEOUT_SECONDS", "3.5")
    s = GatewaySettings(env="production")
    # each service reads its own signing key, and the shared public keys
    assert s.internal_signing_key.get_secret_value() == keys["SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY"]
    market = MarketplaceSettings(env="production")
    assert (
        market.internal_signing_key.get_secret_value()
        == keys["SEEDOS_MARKETPLACE_INTERNAL_SIGNING_KEY"]
    )
    assert s.internal_public_keys == market.internal_public_keys
    assert keys["SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY"] not in repr(s)
    assert s.dsn == "postgresql://u:p@h/db"
    assert s.upstream_timeout_seconds == 3.5
    assert "p@h" not in repr(s)
    monkeypatch.setenv("SEEDOS_GATEWAY_API_KEY_CACHE_TTL_SECONDS", "30")
    with pytest.raises(ValidationError):
        GatewaySettings(env="production")  # revocation must take effect within 5 s


@pytest.mark.parametrize("settings", [ConnectorServiceSettings, MarketplaceSettings])
def test_a_refused_setting_does_not_echo_a_secret(settings, tmp_path):
    """pydantic prints the input of a failed model validator; every service hides it."""
    secret = "x" * 20 + "SECRETTAIL"  # too short: refused by the model validator
    with pytest.raises(ValidationError) as refused:
        settings(env="production", idempotency_key=secret, data_dir=tmp_path)
    assert "SECRETTAIL" not in str(refused.value)
