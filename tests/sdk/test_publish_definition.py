"""seedos-connector publish --definition against the real gateway and marketplace: a definition
file as a new entry, whose exact text the catalog then serves by its digest; a newer version; the
same version again (409); a definition with problems and one whose fixed URL breaks the egress
rule, refused with every problem printed and nothing changed."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from common.roles import Role
from seedos_sdk.declarative.definition import digest_of
from tests.support import make_tenant

SDK = Path(__file__).resolve().parents[2] / "sdk"
DEMO = (SDK / "examples" / "definitions" / "demo-crm.yaml").read_text()


async def _cli(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "seedos_sdk.cli.main", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _definition(folder: Path, name: str, version: str, **changes: object) -> Path:
    raw = yaml.safe_load(DEMO)
    raw.update(name=name, version=version, display_name=name, **changes)
    path = folder / f"{name}-{version}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


async def test_publish_a_definition_then_a_newer_version(suite, dsn, tmp_path: Path) -> None:
    publisher = await make_tenant(dsn, role=Role.publisher)
    name = f"cli-def-{secrets.token_hex(3)}"
    first = _definition(tmp_path, name, "1.0.0")
    # with Windows line ends and a comment: the text published is the file's bytes as they are
    first.write_bytes(b"# published from the command line\r\n"
                      + first.read_bytes().replace(b"\n", b"\r\n"))  # fmt: skip
    digest = digest_of(first.read_bytes())

    def publish(path: Path, *extra: str):
        return _cli("publish", "--gateway", suite.gateway, "--api-key", publisher.key,
                    "--definition", str(path), *extra)  # fmt: skip

    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        made = await publish(first, "--category", "crm", "--vendor", "SEED-OS tests")
        assert made.returncode == 0, made.stdout + made.stderr
        assert f"published {name} 1.0.0 (a new entry, '{name}')" in made.stdout
        assert f"new installs run the text with sha-256 {digest}" in made.stdout
        entry = (await client.get(f"/api/v1/marketplace/connectors/{name}")).json()
        assert (entry["version"], entry["category"], entry["vendor"]) == (
            "1.0.0", "crm", "SEED-OS tests")  # fmt: skip
        assert entry["published_by_you"] and entry["deployed"]
        assert [s["name"] for s in entry["manifest"]["streams"]] == ["contacts", "companies"]
        # the catalog keeps the very bytes of the file, by their digest
        text = await client.get(f"{suite.marketplace_service}/definitions/{digest}")
        assert text.status_code == 200 and text.content == first.read_bytes()

        again = await publish(first)
        assert again.returncode == 1 and "publishing failed (409)" in again.stderr, again.stderr

        newer = await publish(_definition(tmp_path, name, "1.1.0"))
        assert newer.returncode == 0, newer.stdout + newer.stderr
        assert f"published {name} 1.1.0 (a new version, '{name}')" in newer.stdout
        entry = (await client.get(f"/api/v1/marketplace/connectors/{name}")).json()
        assert entry["version"] == "1.1.0" and entry["category"] == "crm"  # kept


async def test_a_refused_definition_prints_every_problem(suite, dsn, tmp_path: Path) -> None:
    publisher = await make_tenant(dsn, role=Role.publisher)
    name = f"cli-bad-{secrets.token_hex(3)}"
    raw = yaml.safe_load(DEMO)
    raw.update(name=name, version="1.0.0")
    raw["streams"][0]["request"]["path"] = "/v1/{{ config.__class__ }}"
    raw["streams"][1]["records"] = "results[?"
    del raw["auth"]["name"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    args = ["publish", "--gateway", suite.gateway, "--api-key", publisher.key]

    refused = await _cli(*args, "--definition", str(bad))

    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[0] == "publishing failed (422): 3 problem(s) with this definition"
    assert lines[1] == "  auth: 'name' is a required property"
    assert lines[2].startswith("  streams[0].request.path: '__class__': names starting with '_'")
    assert lines[3].startswith("  streams[1].records: not a valid JMESPath selector")

    # a fixed base URL the egress rule refuses: the cloud metadata address
    metadata = _definition(tmp_path, name, "1.0.0", base_url="http://169.254.169.254/latest")
    refused = await _cli(*args, "--definition", str(metadata))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "publishing failed (422)" in refused.stderr
    assert "  base_url: host '169.254.169.254' is outside the egress networks" in refused.stderr

    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        r = await client.get(f"/api/v1/marketplace/connectors/{name}")
        assert r.status_code == 404  # nothing was published


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--endpoint", "http://127.0.0.1:9", "--definition", "x.yaml"], 2, "exactly one of"),
        ([], 2, "exactly one of"),
        (["--definition", "nowhere.yaml"], 1, "cannot read nowhere.yaml"),
        (["--definition", "latin1.yaml"], 1, "latin1.yaml is not UTF-8 text"),
    ],
)
def test_publish_says_what_it_cannot_send(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    r = subprocess.run(
        [sys.executable, "-m", "seedos_sdk.cli.main", "publish", "--gateway", "http://127.0.0.1:9",
         "--api-key", "k", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert r.returncode == code, r.stdout + r.stderr
    assert says in r.stderr
