"""`seedos up` (what `make run` runs) on the embedded PostgreSQL, twice, stopped with Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.seedos_cli.up_process import DEV_KEY, start_up, stop_up, wait_for_log
from tests.support import free_port


def _start(data_dir: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    args = [
        "--gateway-port", str(ports["gateway"]), "--connector-port", str(ports["connector"]),
        "--marketplace-port", str(ports["marketplace"]), "--crm-port", str(ports["crm"]),
        "--crm-connector-port", str(ports["crm_connector"]),
        "--generic-connector-port", str(ports["generic_connector"]),
    ]  # fmt: skip
    return start_up(data_dir, args, log)


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True)
    return [
        int(line.split()[0]) for line in out.stdout.splitlines() if str(pid) in line.split()[1:2]
    ]


@pytest.mark.timeout(400)
def test_up_twice_reuses_data_and_rotates_the_dev_key(tmp_path):
    data_dir = Path(tempfile.mkdtemp(prefix="seedos-up-"))
    ports = {name: free_port() for name in ("gateway", "connector", "marketplace", "crm",
                                            "crm_connector", "generic_connector")}  # fmt: skip
    log = tmp_path / "up1.log"
    proc = _start(data_dir, ports, log)
    try:
        key1 = wait_for_log(proc, log, DEV_KEY)[1]
        banner = log.read_text()
        gw = f"http://127.0.0.1:{ports['gateway']}"
        for url in (gw, f"{gw}/docs", f"{gw}/metrics", f"http://127.0.0.1:{ports['connector']}/metrics",
                    f"http://127.0.0.1:{ports['marketplace']}/metrics"):  # fmt: skip
            assert url in banner
        children = _descendants(proc.pid)
        assert len(children) >= 3
        me1 = httpx.get(f"{gw}/api/v1/me", headers={"Authorization": f"Bearer {key1}"}).json()
        assert me1["tenant"]["slug"] == "demo" and me1["role"] == "admin"
        catalog = httpx.get(
            f"{gw}/api/v1/marketplace/connectors?limit=100",
            headers={"Authorization": f"Bearer {key1}"},
        ).json()
        assert len(catalog["items"]) >= 40
        # the example connector runs, talks to the demo CRM and is in the catalog
        demo = httpx.get(
            f"{gw}/api/v1/marketplace/connectors/demo-crm",
            headers={"Authorization": f"Bearer {key1}"},
        ).json()
        connector = f"http://127.0.0.1:{ports['crm_connector']}"
        assert demo["deployed"] is True and demo["manifest"]["name"] == "demo-crm"
        crm_key = re.search(r"demo CRM\s+\S+\s+\(API key (\S+)\)", banner)[1]
        read = {"config": {"base_url": f"http://127.0.0.1:{ports['crm']}"},
                "credentials": {"api_key": crm_key}}  # fmt: skip
        page = httpx.post(f"{connector}/streams/contacts/read", json=read).json()
        assert len(page["records"]) > 0
        # the generic connector runs the demo CRM's definition, in the catalog at its digest's URL
        declarative = httpx.get(
            f"{gw}/api/v1/marketplace/connectors/demo-crm-declarative",
            headers={"Authorization": f"Bearer {key1}"},
        ).json()
        assert declarative["deployed"] is True, declarative
        assert f"http://127.0.0.1:{ports['generic_connector']}/definitions" in banner
        served = httpx.get(f"http://127.0.0.1:{ports['generic_connector']}/definitions").json()
        endpoint = f"http://127.0.0.1:{ports['generic_connector']}" + served["items"][0]["path"]
        page = httpx.post(f"{endpoint}/streams/contacts/read", json=read).json()
        assert len(page["records"]) > 0
        # a definition published now runs there too: fetched from this run's marketplace
        text = (ROOT / "sdk" / "examples" / "definitions" / "demo-crm.yaml").read_text()
        text = (text.replace("name: demo-crm-declarative", "name: my-crm")
                .replace("version: 1.0.0", "version: 0.1.0")
                .replace("display_name: Demo CRM (declarative)", "display_name: My CRM"))  # fmt: skip
        # (a publisher key is the operator's to mint, on the running suite's database)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SEEDOS_") and k != "DATABASE_URL"}  # fmt: skip
        made = subprocess.run(
            [sys.executable, "-m", "seedos_cli.main", "apikey", "create", "--tenant", "demo",
             "--role", "publisher", "--name", "up"],
            env={**env, "SEEDOS_DATA_DIR": str(data_dir)}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        minted = re.search(r"sk_seedos_\S+", made.stdout)[0]
        publisher = {"Authorization": f"Bearer {minted}"}
        published = httpx.post(f"{gw}/api/v1/marketplace/definitions", headers=publisher,
                               json={"definition": text, "category": "crm"})  # fmt: skip
        assert published.status_code == 201 and published.json()["deployed"], published.text
        digest = hashlib.sha256(text.encode()).hexdigest()
        mine = f"http://127.0.0.1:{ports['generic_connector']}/definitions/my-crm/0.1.0/{digest}"
        page = httpx.post(f"{mine}/streams/contacts/read", json=read).json()
        assert len(page["records"]) > 0, page
        # and installed for the demo tenant, through the API, so the dashboard has records
        assert "(in the catalog as 'demo-crm', installed for the demo tenant" in banner
        installs = httpx.get(f"{gw}/api/v1/integrations", params={"service": "demo-crm"},
                             headers={"Authorization": f"Bearer {key1}"}).json()["items"]  # fmt: skip
        assert [i["config"]["base_url"] for i in installs] == [f"http://127.0.0.1:{ports['crm']}"]
        secrets_file = data_dir / "secrets.json"
        assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
        secrets_before = json.loads(secrets_file.read_text())
    finally:
        code = stop_up(proc)
    assert code == 0, log.read_text()
    # nothing left behind to warn about (the recommendations' worker pool is shut down)
    assert "leaked semaphore" not in log.read_text(errors="replace")
    for port in ports.values():
        assert _port_closed(port)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL left running"

    log2 = tmp_path / "up2.log"
    proc = _start(data_dir, ports, log2)
    try:
        key2 = wait_for_log(proc, log2, DEV_KEY)[1]
        assert key2 != key1
        gw = f"http://127.0.0.1:{ports['gateway']}"
        old = httpx.get(f"{gw}/api/v1/me", headers={"Authorization": f"Bearer {key1}"})
        assert old.status_code == 401, "the previous dev key must be revoked"
        me2 = httpx.get(f"{gw}/api/v1/me", headers={"Authorization": f"Bearer {key2}"}).json()
        assert me2["tenant"]["id"] == me1["tenant"]["id"], "the data must survive a restart"
        assert json.loads(secrets_file.read_text()) == secrets_before
        again = httpx.get(f"{gw}/api/v1/integrations", params={"service": "demo-crm"},
                          headers={"Authorization": f"Bearer {key2}"}).json()["items"]  # fmt: skip
        assert [i["id"] for i in again] == [i["id"] for i in installs], "installed once"
    finally:
        assert stop_up(proc) == 0
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
