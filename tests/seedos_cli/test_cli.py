"""The seedos CLI as a user runs it: a real process against the session's database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import TEST_PROVIDERS

COMMANDS = [
    [], ["up"], ["migrate"], ["seed-demo"], ["tenant"], ["tenant", "create"],
    ["apikey"], ["apikey", "create"], ["apikey", "list"], ["apikey", "revoke"],
]  # fmt: skip


def seedos(*args: str, dsn: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    env |= {"DATABASE_URL": dsn, "SEEDOS_ENV": "production"}  # the CLI needs no service's keys
    # the gateway's providers, as an operator's shell has them (the suite's: tests/conftest.py)
    env["SEEDOS_GATEWAY_OIDC_PROVIDERS"] = TEST_PROVIDERS
    proc = subprocess.run(
        [sys.executable, "-m", "seedos_cli.main", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "seedos")
def test_every_command_has_help(args, dsn):
    out = seedos(*args, "--help", dsn=dsn)
    assert "Usage" in out.stdout and "--help" in out.stdout


async def test_tenant_and_apikey_lifecycle(suite, dsn):
    slug = f"cli-{os.getpid()}-{time.monotonic_ns() % 100000}"
    out = await asyncio.to_thread(
        seedos, "tenant", "create", "--slug", slug, "--name", "CLI Co", "--industry", "fintech",
        "--size", "42", dsn=dsn,
    )  # fmt: skip
    assert f"created tenant {slug}" in out.stdout
    dup = await asyncio.to_thread(
        seedos, "tenant", "create", "--slug", slug, "--name", "Again", dsn=dsn, check=False
    )
    assert dup.returncode == 1 and "exists" in dup.stderr
    bad = await asyncio.to_thread(
        seedos, "tenant", "create", "--slug", "Not A Slug", "--name", "x", dsn=dsn, check=False
    )
    assert bad.returncode == 1 and "slug" in bad.stderr

    default = await asyncio.to_thread(seedos, "apikey", "create", "--tenant", slug, dsn=dsn)
    viewer = await asyncio.to_thread(
        seedos, "apikey", "create", "--tenant", slug, "--role", "viewer", "--name", "ro", dsn=dsn
    )
    key = re.search(r"key:\s+(sk_seedos_\S+)", viewer.stdout)[1]
    key_id = re.search(r"id:\s+(\S+)", viewer.stdout)[1]
    assert "role: editor" in default.stdout and "role: viewer" in viewer.stdout
    wrong_role = await asyncio.to_thread(
        seedos, "apikey", "create", "--tenant", slug, "--role", "root", dsn=dsn, check=False
    )
    assert wrong_role.returncode == 2
    listed = await asyncio.to_thread(seedos, "apikey", "list", "--tenant", slug, dsn=dsn)
    assert key_id in listed.stdout and key not in listed.stdout and "ro" in listed.stdout

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        me = (await client.get("/api/v1/me", headers=headers)).json()
        assert me["tenant"]["slug"] == slug and me["role"] == "viewer"
        assert me["tenant"]["industry"] == "fintech" and me["tenant"]["size"] == 42
        await asyncio.to_thread(seedos, "apikey", "revoke", key_id, dsn=dsn)
        deadline = time.monotonic() + 5
        while (await client.get("/api/v1/me", headers=headers)).status_code != 401:
            assert time.monotonic() < deadline, "revoked key still accepted after 5 s"
            await asyncio.sleep(0.05)
    listed = await asyncio.to_thread(seedos, "apikey", "list", "--tenant", slug, "--all", dsn=dsn)
    assert re.search(rf"{key_id}.*revoked", listed.stdout)
    missing = await asyncio.to_thread(
        seedos, "apikey", "list", "--tenant", "no-such-tenant", dsn=dsn, check=False
    )
    assert missing.returncode == 1 and "no tenant" in missing.stderr


def test_seed_demo_and_migrate_are_idempotent(dsn):
    assert "applied 0 migration(s)" in seedos("migrate", dsn=dsn).stdout
    first = seedos("seed-demo", dsn=dsn).stdout
    assert "demo tenant 'demo' ready" in first and re.search(r"(\d+) catalog entries", first)
    assert seedos("seed-demo", dsn=dsn).stdout == first


async def test_up_refuses_busy_ports_before_touching_anything(dsn):
    import socket

    import asyncpg

    async def dev_keys() -> list:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(
                "SELECT id, revoked_at FROM api_keys WHERE purpose = 'dev' ORDER BY id"
            )
        finally:
            await conn.close()

    before = await dev_keys()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = await asyncio.to_thread(
            seedos, "up", "--gateway-port", str(port), dsn=dsn, check=False
        )
    assert out.returncode == 1 and f"port {port} (gateway) is in use" in out.stderr
    assert await dev_keys() == before
