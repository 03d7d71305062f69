"""Credentials at rest in the real database, and `seedos keys rotate` as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import ValidationError

from common import db
from common.crypto import DecryptionError, KeyRing
from connector_service.credentials import service as credentials
from connector_service.settings import ConnectorServiceSettings
from tests.support import make_tenant, migrated_database

SECRETS = {"api_key": "sk_live_" + "x" * 24, "password": "correct horse battery staple"}


async def _install(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
        " VALUES ($1, 'crm', 'demo-crm') RETURNING id",
        tenant_id,
    )


async def test_stored_encrypted_and_bound_to_their_row(dsn):
    ring = KeyRing.generate()
    t = await make_tenant(dsn)
    conn = await db.connect(dsn)
    try:
        first, second = await _install(conn, t.tenant_id), await _install(conn, t.tenant_id)
        await credentials.store(conn, ring, tenant_id=t.tenant_id, integration_id=first,
                                secrets=SECRETS)  # fmt: skip
        loaded = await credentials.load(conn, ring, tenant_id=t.tenant_id, integration_id=first)
        assert loaded == SECRETS
        assert await credentials.fields_set(conn, tenant_id=t.tenant_id, integration_id=first) == [
            "api_key",
            "password",
        ]
        raw = await conn.fetch("SELECT * FROM credentials WHERE integration_id = $1", first)
        dump = b"".join(bytes(str(dict(r)), "utf-8") for r in raw)
        for value in SECRETS.values():
            assert value.encode() not in dump
        # an envelope copied into another install's row does not decrypt there
        await conn.execute(
            "INSERT INTO credentials (tenant_id, integration_id, field, key_id, wrapped_key, nonce,"
            " ciphertext) SELECT tenant_id, $2, field, key_id, wrapped_key, nonce, ciphertext"
            " FROM credentials WHERE integration_id = $1",
            first,
            second,
        )
        with pytest.raises(DecryptionError):
            await credentials.load(conn, ring, tenant_id=t.tenant_id, integration_id=second)
        # another tenant sees nothing of it
        other = await make_tenant(dsn)
        assert (
            await credentials.load(conn, ring, tenant_id=other.tenant_id, integration_id=first)
            == {}
        )
    finally:
        await conn.close()


def test_production_needs_a_key_ring(monkeypatch, tmp_path):
    for name in ("SEEDOS_CREDENTIAL_KEYS", "SEEDOS_CREDENTIAL_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    base = {"env": "production", "internal_token_key": "k" * 40, "data_dir": tmp_path}
    with pytest.raises(ValidationError, match="credential key ring is required"):
        ConnectorServiceSettings(**base)
    with pytest.raises(ValidationError, match="not a credential key ring"):
        ConnectorServiceSettings(**base, credential_keys="nope")
    ring = KeyRing.generate()
    assert (
        ConnectorServiceSettings(**base, credential_keys=ring.to_json()).key_source().ring.primary
        == ring.primary
    )


@pytest.fixture
async def own_dsn(admin_dsn: str) -> AsyncIterator[str]:
    """A database of its own: rotation re-wraps every credential in the database."""
    async with migrated_database(admin_dsn, "seedos_rotate") as url:
        yield url


def _seedos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seedos_cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


async def test_keys_rotate_rewraps_everything_and_keeps_the_old_key(own_dsn, tmp_path):
    dsn = own_dsn
    ring = KeyRing.generate()
    key_file = tmp_path / "keys.json"
    key_file.write_text(ring.to_json())
    t = await make_tenant(dsn)
    conn = await db.connect(dsn)
    try:
        installs = [await _install(conn, t.tenant_id) for _ in range(3)]
        for install in installs:
            await credentials.store(conn, ring, tenant_id=t.tenant_id, integration_id=install,
                                    secrets=SECRETS)  # fmt: skip
    finally:
        await conn.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    env |= {"DATABASE_URL": dsn, "SEEDOS_ENV": "production",
            "SEEDOS_CREDENTIAL_KEY_FILE": str(key_file)}  # fmt: skip
    run = await asyncio.to_thread(_seedos, "keys", "rotate", env=env)
    assert run.returncode == 0, run.stderr
    rotated = KeyRing.from_json(key_file.read_text())
    assert rotated.primary != ring.primary and ring.primary in rotated.key_ids
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f"re-wrapped {len(installs) * len(SECRETS)} credential(s)" in run.stdout

    conn = await db.connect(dsn)
    try:
        key_ids = await conn.fetch(
            "SELECT DISTINCT key_id FROM credentials WHERE integration_id = ANY($1)", installs
        )
        assert [r["key_id"] for r in key_ids] == [rotated.primary]
        for install in installs:
            assert (
                await credentials.load(conn, rotated, tenant_id=t.tenant_id, integration_id=install)
                == SECRETS
            )
    finally:
        await conn.close()

    # a ring given in the environment cannot be written back: rotate says so and changes nothing
    env_ring = {**env, "SEEDOS_CREDENTIAL_KEYS": rotated.to_json()}
    env_ring.pop("SEEDOS_CREDENTIAL_KEY_FILE")
    refused = await asyncio.to_thread(_seedos, "keys", "rotate", env=env_ring)
    assert refused.returncode == 1 and "SEEDOS_CREDENTIAL_KEY_FILE" in refused.stderr
    assert json.loads(key_file.read_text()) == json.loads(rotated.to_json())
