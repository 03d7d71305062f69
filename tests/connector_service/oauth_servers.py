"""The OAuth test world on loopback: the npm oidc-provider authorization server of the SDK's tests
(sdk/tests/oidc/server.mjs), the demo CRM and the example connector in oauth2 mode, and the
three services configured for them, all real processes; and a browser stand-in that goes through
the provider's development login and consent pages. (The SDK's own fixtures are not imported:
its tests are another distribution's.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.crypto import KeyRing
from connector_service.oauth.config import BINDING_COOKIE
from marketplace_service.catalog.service import register_deployed
from seedos_cli.examples import SDK_DIR
from seedos_cli.supervisor import SERVICES, ServiceSpec, Supervisor
from tests.conftest import Suite, start_suite
from tests.support import connected, free_port, set_cookie

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


@dataclass
class Recorder:
    """A token endpoint that answers every POST with a token and keeps what it was sent."""

    url: str = ""
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def recording_endpoint(host: str = "127.0.0.2") -> AsyncIterator[Recorder]:
    """A :class:`Recorder` listening on ``host``: 127.0.0.2 is loopback, but outside a rule
    that allows only 127.0.0.1/32. Whatever connected has been answered (and so recorded) by
    the time its caller has an answer."""
    recorder = Recorder()
    token = b'{"access_token": "from-the-recorder", "token_type": "Bearer", "expires_in": 600}'

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            recorder.requests.append(
                head + await reader.readexactly(int(length[1]) if length else 0)
            )
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close"
                         b"\r\nContent-Length: %d\r\n\r\n%s" % (len(token), token))  # fmt: skip
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            recorder.requests.append(b"")  # a connection, even without a whole request
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, 0)
    recorder.url = f"http://{host}:{server.sockets[0].getsockname()[1]}/token"
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def binding_of(response: httpx.Response) -> str:
    """The value of the binding cookie a start URL's answer sets."""
    return set_cookie(response, BINDING_COOKIE)


def with_binding(binding: str) -> dict[str, str]:
    """The Cookie header a browser holding ``binding`` sends to the gateway. Set explicitly:
    httpx's cookie jar keeps the cookie (Secure) off http://, where the tests' gateway is."""
    return {"cookie": f"{BINDING_COOKIE}={binding}"}


async def open_start(start_url: str) -> tuple[str, str]:
    """Open a connect's start URL as a browser does: (the provider's authorization URL it
    redirects to, the binding cookie it sets)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await browser.get(start_url)
    assert response.status_code == 303, response.text
    return response.headers["location"], binding_of(response)


@dataclass(frozen=True)
class Approved:
    """Where the provider redirects the browser that approved, and that browser's binding."""

    url: str
    binding: str

    @property
    def cookie(self) -> dict[str, str]:
        return with_binding(self.binding)

    async def open(self) -> httpx.Response:
        """Follow the redirect in the browser that approved (with its binding cookie)."""
        async with httpx.AsyncClient(timeout=30) as browser:
            return await browser.get(self.url, headers=self.cookie)


async def consent(start_url: str, *, stop_at: str, login: str = "alice") -> Approved:
    """Act as the user's browser: open the connect's start URL (which binds the connect to it),
    then :func:`approve` at the provider."""
    authorization_url, binding = await open_start(start_url)
    return await approve(authorization_url, binding=binding, stop_at=stop_at, login=login)


async def approve(
    authorization_url: str, *, binding: str, stop_at: str, login: str = "alice"
) -> Approved:
    """Act as the browser holding ``binding`` at the provider: follow its redirects, sign in on
    the login page, approve on the consent page; return the URL the provider finally redirects
    to (which starts with ``stop_at``), without following it."""
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await browser.get(authorization_url)
        for _step in range(12):
            if response.is_redirect:
                target = str(response.url.join(response.headers["location"]))
                if target.startswith(stop_at):
                    return Approved(target, binding)
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


CALLBACK = "/api/v1/integrations/oauth/callback"
START = "/api/v1/integrations/oauth/start"
PLATFORM = ("seedos-platform", "platform-secret-" + secrets.token_hex(8))  # the platform's app
OWN_APP = ("tenant-own-app", "own-app-secret-" + secrets.token_hex(8))  # a tenant's own app
TTL = 50  # access tokens' lifetime: under the 60 s refresh margin, so always "expiring soon"
# Everything of the world listens on 127.0.0.1; 127.0.0.2 (loopback too) is left outside, for a
# token or revocation URL the services must refuse. Both rules list it explicitly: the
# connectors' and egress, where the authorization server stands in for a public provider.
ALLOWED_NETWORKS = "127.0.0.1/32,::1/128"


@dataclass
class World:
    suite: Suite
    auth: AuthServer
    crm: str
    connector: str
    slug: str  # the example connector's catalog entry (oauth2)
    manifest: dict
    ring: KeyRing  # the services' credential key ring

    async def check(self, access_token: str) -> httpx.Response:
        """What the ConnectorManager will do: call the connector's check with the token."""
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(self.connector + "/check", json={
                "config": {"base_url": self.crm}, "credentials": {"access_token": access_token}})  # fmt: skip


@asynccontextmanager
async def running_world(dsn: str, tmp: Path, **env: str) -> AsyncIterator[World]:
    """The authorization server (PKCE required, refresh tokens rotated, TTL-second tokens) with
    the platform's and a tenant's app, the demo CRM introspecting against it, the example
    connector in oauth2 mode in the catalog under a slug of its own, and the three services
    with the platform's app configured, the gateway as public URL and only 127.0.0.1 (and ::1)
    allowed to connect to, under both rules. ``env`` adds to the services' environment."""
    ports = {spec.name: free_port() for spec in SERVICES}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    app = {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
           "redirect_uris": [gateway + CALLBACK], "scope": "crm.read crm.write offline_access"}  # fmt: skip
    auth = start_auth_server(
        clients=[
            {"client_id": PLATFORM[0], "client_secret": PLATFORM[1], **app},
            {"client_id": OWN_APP[0], "client_secret": OWN_APP[1], **app},
        ],
        env={"OIDC_TOKEN_TTL": str(TTL), "OIDC_ROTATE_REFRESH_TOKENS": "1"},
        log_path=tmp / "oidc.log",
    )
    examples = Supervisor(
        {k: v for k, v in os.environ.items() if not k.startswith(("SEEDOS_", "DEMO_CRM_"))},
        log_path=tmp / "examples.log",
    )
    ports |= {"demo_crm": free_port(), "crm_connector": free_port()}
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in ("demo_crm", "crm_connector")}
    ring = KeyRing.generate()
    slug = f"demo-crm-oauth-{secrets.token_hex(3)}"
    suite = None
    try:
        examples.start(ServiceSpec(
            "demo_crm", "examples.demo_crm.app:create_app", cwd=SDK_DIR, env={
                "DEMO_CRM_DATA_DIR": str(tmp / "crm"), "DEMO_CRM_API_KEYS": "crm-admin-key",
                "DEMO_CRM_INTROSPECTION_URL": auth.endpoints["introspection_endpoint"],
                "DEMO_CRM_INTROSPECTION_CLIENT_ID": INTROSPECTOR[0],
                "DEMO_CRM_INTROSPECTION_CLIENT_SECRET": INTROSPECTOR[1],
                "DEMO_CRM_INTROSPECTION_CACHE_SECONDS": "0",
            }), ports["demo_crm"])  # fmt: skip
        examples.start(ServiceSpec(
            "crm_connector", "examples.crm_connector.connector:app", factory=False, cwd=SDK_DIR,
            env={"CRM_CONNECTOR_AUTH": "oauth2", "CRM_CONNECTOR_OAUTH_ISSUER": auth.issuer},
        ), ports["crm_connector"])  # fmt: skip
        examples.wait_ready(urls, timeout=60, path="/healthz")
        async with httpx.AsyncClient() as client:
            manifest = (await client.get(urls["crm_connector"] + "/manifest")).json()
        assert manifest["auth"]["scheme"] == "oauth2"
        manifest["name"], manifest["display_name"] = slug, f"Demo CRM {slug}"  # unique
        async with connected(dsn) as conn:
            await register_deployed(conn, manifest=manifest, endpoint_url=urls["crm_connector"],
                                    category="crm", vendor="tests")  # fmt: skip
        suite = start_suite(
            dsn, tmp / "services.log", ports={s.name: ports[s.name] for s in SERVICES},
            SEEDOS_PUBLIC_URL=gateway, SEEDOS_CREDENTIAL_KEYS=ring.to_json(),
            SEEDOS_ENDPOINT_ALLOWED_NETWORKS=ALLOWED_NETWORKS,
            SEEDOS_EGRESS_ALLOWED_NETWORKS=ALLOWED_NETWORKS,
            # tokens live TTL (50 s): with a 10 s margin the services use them as they are, so
            # a token the provider revoked reaches the connector and comes back as a 401
            SEEDOS_CONNECTOR_OAUTH_REFRESH_MARGIN_SECONDS="10",
            SEEDOS_CONNECTOR_OAUTH_CLIENTS=json.dumps(
                {slug: {"client_id": PLATFORM[0], "client_secret": PLATFORM[1]}}),
            **env,
        )  # fmt: skip
        yield World(suite, auth, urls["demo_crm"], urls["crm_connector"], slug, manifest, ring)
    finally:
        if suite is not None:
            suite.supervisor.stop()
        examples.stop()
        auth.stop()
