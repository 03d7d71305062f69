"""The OAuth test world on loopback: the npm oidc-provider authorization server of the SDK's tests
(sdk/tests/oidc/server.mjs) as a real process, and a browser stand-in that goes through its
development login and consent pages. (The SDK's own fixtures are not imported: the SDK's tests
are another distribution's.)"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

OIDC_DIR = Path(__file__).resolve().parents[2] / "sdk" / "tests" / "oidc"
INTROSPECTOR = ("demo-crm", "demo-crm-secret")  # the demo CRM, a resource server


def available() -> bool:
    return (
        shutil.which("node") is not None and (OIDC_DIR / "node_modules" / "oidc-provider").is_dir()
    )


@dataclass
class AuthServer:
    process: subprocess.Popen[bytes]
    endpoints: dict[str, str]

    @property
    def issuer(self) -> str:
        return self.endpoints["issuer"]

    def introspect(self, token: str) -> dict:
        response = httpx.post(
            self.endpoints["introspection_endpoint"], data={"token": token}, auth=INTROSPECTOR
        )
        response.raise_for_status()
        return response.json()

    def revoke(self, token: str, *, client: tuple[str, str], hint: str) -> None:
        response = httpx.post(
            self.endpoints["revocation_endpoint"],
            data={"token": token, "token_type_hint": hint},
            auth=client,
        )
        response.raise_for_status()

    def refresh(self, refresh_token: str, *, client: tuple[str, str]) -> httpx.Response:
        """A refresh as any client could try it (to see whether a refresh token still works)."""
        return httpx.post(
            self.endpoints["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=client,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_auth_server(*, clients: list[dict], env: dict[str, str], log_path: Path) -> AuthServer:
    """Start server.mjs with these clients (plus the demo CRM's introspection client)."""
    introspector = {
        "client_id": INTROSPECTOR[0], "client_secret": INTROSPECTOR[1],
        "grant_types": [], "response_types": [], "redirect_uris": [],
    }  # fmt: skip
    full_env = {**os.environ, **env, "OIDC_CLIENTS": json.dumps([*clients, introspector])}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["node", "server.mjs"], cwd=OIDC_DIR, env=full_env, stdout=subprocess.PIPE, stderr=log
        )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return AuthServer(process, json.loads(process.stdout.readline()))
    process.kill()
    raise RuntimeError(f"the authorization server did not start: {log_path.read_text()[-2000:]}")


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


async def consent(authorization_url: str, *, stop_at: str, login: str = "alice") -> str:
    """Act as the user's browser at the provider: follow its redirects, sign in on the login
    page, approve on the consent page; return the URL the provider finally redirects to (which
    starts with ``stop_at``), without following it."""
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await browser.get(authorization_url)
        for _step in range(12):
            if response.is_redirect:
                target = str(response.url.join(response.headers["location"]))
                if target.startswith(stop_at):
                    return target
                response = await browser.get(target)
                continue
            assert response.status_code == 200, response.text[:500]
            form = _FORM.search(response.text)
            assert form, f"no form on the provider's page: {response.text[:500]}"
            fields = dict(_HIDDEN.findall(response.text))
            if fields.get("prompt") == "login":
                fields |= {"login": login, "password": "any"}
            response = await browser.post(response.url.join(form.group(1)), data=fields)
    raise AssertionError("the provider did not redirect back")
