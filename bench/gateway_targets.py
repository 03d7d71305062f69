"""What bench/gateway_proxy.py sends beside the API key and the session cookie: a Supabase-shaped
bearer JWT (signed here with an ES256 key whose JWKS a small server in this process serves, as
Supabase Auth serves its own at ``<issuer>/.well-known/jwks.json``), and the baseline: the
gateway and connector_service of an earlier revision (by default the last commit before issue
13), run from ``git archive`` of that revision on the same database, with the API key."""

from __future__ import annotations

import json
import secrets
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from seedos_cli.supervisor import ServiceSpec, Supervisor
from seedos_sdk.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
# the last commit before issue 13: "today's API-key path" of that targets
BASELINE_REVISION = "626c2e3"
JWT_LIFETIME_SECONDS = 4 * 3600  # longer than any run


class JwksServer:
    """Serves one key set at ``/auth/v1/.well-known/jwks.json`` on loopback, in a thread."""

    def __init__(self, keys: dict[str, Any]) -> None:
        body = json.dumps(keys).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/auth/v1/.well-known/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SupabaseIssuer:
    """An ES256 key (Supabase's default for its asymmetric signing keys), its JWKS server, and
    the gateway setting that trusts it authoritatively (tenant and role from app_metadata)."""

    key: ECKey
    server: JwksServer

    @classmethod
    def start(cls) -> SupabaseIssuer:
        key = ECKey.generate_key("P-256", parameters={"kid": f"bench-{uuid.uuid4().hex[:8]}"})
        return cls(key=key, server=JwksServer({"keys": [key.as_dict(private=False)]}))

    def setting(self) -> str:
        issuer = {"kind": "supabase", "issuer": self.server.issuer, "mode": "authoritative"}
        return json.dumps({"supabase": issuer})

    def token(self, *, tenant_id: Any, role: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.server.issuer, "aud": "authenticated", "sub": str(uuid.uuid4()),
            "iat": now, "exp": now + JWT_LIFETIME_SECONDS, "role": "authenticated",
            "email": "bench@example.com", "is_anonymous": False,
            "app_metadata": {"provider": "email", "tenant_id": str(tenant_id), "role": role},
            "user_metadata": {},
        }  # fmt: skip
        header = {"alg": "ES256", "typ": "JWT", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])

    def close(self) -> None:
        self.server.close()


def unpack_revision(revision: str, into: Path) -> str:
    """The files of ``revision`` (a commit of this repository) in ``into``; its full id."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--verify", revision + "^{commit}"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    archive = into.with_suffix(".tar")
    subprocess.run([*git, "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return commit


def start_baseline(
    supervisor: Supervisor, source: Path, env: dict[str, str], *, marketplace_url: str
) -> dict[str, str]:
    """The earlier revision's connector_service and gateway, from ``source``, with that
    revision's shared HMAC internal-token key; their URLs by name."""
    ports = {"baseline_connector": free_port(), "baseline_gateway": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    old_env = {
        "SEEDOS_INTERNAL_TOKEN_KEY": secrets.token_urlsafe(48),
        "SEEDOS_PUBLIC_URL": urls["baseline_gateway"],
        "SEEDOS_GATEWAY_CONNECTOR_SERVICE_URL": urls["baseline_connector"],
        "SEEDOS_GATEWAY_MARKETPLACE_SERVICE_URL": marketplace_url,
    }
    specs = {
        "baseline_connector": ServiceSpec("baseline_connector", "connector_service.app:create_app",
                                          cwd=source, env={**env, **old_env}),
        "baseline_gateway": ServiceSpec("baseline_gateway", "gateway.app:create_app",
                                        cwd=source, env={**env, **old_env}),
    }  # fmt: skip
    for name, spec in specs.items():
        supervisor.start(spec, ports[name])
    supervisor.wait_ready(urls, timeout=60)
    return urls
