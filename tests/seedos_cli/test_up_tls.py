"""`seedos up --tls`: the gateway over HTTPS (TLS 1.3 only) with a local CA's certificate, the
demo sign-in working over it. One run without the examples, on the embedded PostgreSQL
(about 15 s, most of it the database's first start)."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from gateway.browser import HSTS
from tests.seedos_cli.up_process import DEV_KEY, start_up, stop_up, wait_for_log
from tests.support import free_port


def _start(data_dir: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    args = [
        "--tls", "--no-examples", "--gateway-port", str(ports["gateway"]),
        "--connector-port", str(ports["connector"]),
        "--marketplace-port", str(ports["marketplace"]),
    ]  # fmt: skip
    return start_up(data_dir, args, log)


@pytest.mark.timeout(300)
def test_up_tls_serves_https_with_a_local_ca(tmp_path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="seedos-up-tls-"))
    ports = {name: free_port() for name in ("gateway", "connector", "marketplace")}
    log = tmp_path / "up.log"
    proc = _start(data_dir, ports, log)
    try:
        banner = wait_for_log(proc, log, re.compile(re.escape("Press Ctrl-C to stop."))).string
        gw = f"https://127.0.0.1:{ports['gateway']}"
        ca = data_dir / "tls" / "ca.pem"
        assert f"gateway              {gw}" in banner and str(ca) in banner
        key = DEV_KEY.search(banner)[1]
        assert f"curl --cacert {ca} -H 'Authorization: Bearer {key}' {gw}/api/v1/me" in banner
        assert (data_dir / "tls" / "server-key.pem").stat().st_mode & 0o777 == 0o600
        trust = ssl.create_default_context(cafile=str(ca))

        with httpx.Client(base_url=gw, verify=trust) as client:
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
            assert me.status_code == 200 and me.json()["tenant"]["slug"] == "demo"
            assert me.headers["strict-transport-security"] == HSTS.decode()
            # the demo sign-in (development, loopback) works over https: a Secure cookie
            signed_in = client.post("/auth/dev-login", headers={"origin": gw})
            assert signed_in.status_code == 303, signed_in.text
            assert "secure" in signed_in.headers["set-cookie"].lower()
            session = client.get("/api/v1/me").json()
            assert (session["auth_method"], session["role"]) == ("session", "admin")

        old = ssl.create_default_context(cafile=str(ca))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", ports["gateway"]), timeout=5) as raw,
            pytest.raises(ssl.SSLError) as refused,
        ):
            old.wrap_socket(raw, server_hostname="localhost")
        assert not isinstance(refused.value, ssl.SSLCertVerificationError)
        # internal traffic stays plain HTTP on loopback
        assert httpx.get(f"http://127.0.0.1:{ports['connector']}/healthz").status_code == 200
    finally:
        code = stop_up(proc)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert code == 0, log.read_text()
