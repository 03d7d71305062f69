"""`seedos keys generate` and the three steps of rotating a signing key in a deployment's .env,
checked the way the services read it: at every step each service starts with what the file
says, and tokens signed with the key in use verify, including across the switch."""

from __future__ import annotations

import os
import uuid

import dotenv
import pytest
from typer.testing import CliRunner

from common.internal_auth import ANYTHING, Principal, TokenSigner, TokenVerifier
from connector_service.settings import ConnectorServiceSettings
from gateway.settings import GatewaySettings
from seedos_cli.main import app

PRINCIPAL = Principal(tenant_id=uuid.uuid4(), subject="x", role="viewer")


def _services(env_file) -> tuple[GatewaySettings, ConnectorServiceSettings]:
    values = {k: v for k, v in dotenv.dotenv_values(env_file).items() if v is not None}
    common = {"env": "production", "internal_public_keys": values["SEEDOS_INTERNAL_PUBLIC_KEYS"]}
    gateway = GatewaySettings(
        **common, internal_signing_key=values["SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY"]
    )
    connector = ConnectorServiceSettings(
        **common, idempotency_key=values["SEEDOS_IDEMPOTENCY_KEY"],
        credential_keys=values["SEEDOS_CREDENTIAL_KEYS"],
    )  # fmt: skip
    return gateway, connector


def _token(gateway: GatewaySettings) -> str:
    return TokenSigner(key=gateway.signing_key(), issuer="gateway").mint(
        PRINCIPAL, audience="connector_service"
    )


def _verifier(connector: ConnectorServiceSettings) -> TokenVerifier:
    return TokenVerifier(public_keys=connector.public_keys(), audience="connector_service",
                         trust={"gateway": ANYTHING})  # fmt: skip


def test_rotation_without_downtime(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SEEDOS_"):
            monkeypatch.delenv(name)
    cli = CliRunner()
    env_file = tmp_path / ".env"
    assert cli.invoke(app, ["keys", "generate", "--output", str(env_file)]).exit_code == 0
    gateway, connector = _services(env_file)
    old_token = _token(gateway)
    old_kid = gateway.signing_key().kid
    assert _verifier(connector).verify(old_token).subject == "x"

    # 1. publish: services restarted now accept both keys; the gateway still signs the old way
    step = cli.invoke(app, ["keys", "add-signing-key", "gateway", "--env-file", str(env_file)])
    assert step.exit_code == 0, step.output
    gateway, connector = _services(env_file)
    assert gateway.signing_key().kid == old_kid
    assert len(connector.public_keys().by_issuer["gateway"]) == 2
    again = cli.invoke(app, ["keys", "add-signing-key", "gateway", "--env-file", str(env_file)])
    assert again.exit_code == 1 and "promote it" in again.output

    # 2. promote: the gateway signs with the new key; old tokens in flight still verify
    step = cli.invoke(app, ["keys", "promote-signing-key", "gateway", "--env-file", str(env_file)])
    assert step.exit_code == 0 and f"retire-signing-key {old_kid}" in step.output
    gateway, connector = _services(env_file)
    new_token = _token(gateway)
    assert gateway.signing_key().kid != old_kid
    verifier = _verifier(connector)
    assert verifier.verify(old_token) == verifier.verify(new_token)
    live = cli.invoke(app, ["keys", "retire-signing-key", gateway.signing_key().kid,
                            "--env-file", str(env_file)])  # fmt: skip
    assert live.exit_code == 1 and "cannot be retired" in live.output

    # 3. retire: the old key is gone; its tokens are refused, the new ones still verify
    step = cli.invoke(app, ["keys", "retire-signing-key", old_kid, "--env-file", str(env_file)])
    assert step.exit_code == 0, step.output
    _gateway, connector = _services(env_file)
    verifier = _verifier(connector)
    assert verifier.verify(new_token).subject == "x"
    with pytest.raises(Exception, match="not trusted"):
        verifier.verify(old_token)
    refused = cli.invoke(app, ["keys", "add-signing-key", "connector_service",
                               "--env-file", str(env_file)])  # fmt: skip
    assert refused.exit_code == 2 and "signs nothing" in refused.output
