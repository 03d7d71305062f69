"""Bearer JWTs from configured issuers, through a real gateway to the real services: Supabase
Auth's tokens (ES256 from its JWKS, and the legacy HS256 with the project's JWT secret), an
OIDC provider's whose subjects are looked up among our people (directory), and what must be
refused (another algorithm, ``none``, HS256 to an asymmetric issuer, another audience or
issuer, expired, not yet valid, a made-up key id: fetched again once a minute at most).

The issuers' keys (and one discovery document) are served by :class:`KeyServer`, a plain HTTP
server on 127.0.0.1 in a thread of this process, counting what it is asked for. The module's
rig costs ~6 s to start; the WebSocket test waits ~5 s for its token to expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from gateway.settings import GatewaySettings, JwtIssuerSettings
from tests.conftest import Suite, start_suite
from tests.gateway.test_ws_tickets import _integration, close_code
from tests.people import make_person
from tests.support import TenantKey, free_port, make_tenant, metric_total

PROBLEM = "application/problem+json"
# Supabase's local development JWT secret (supabase/config.toml), as legacy projects have one
LEGACY_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
IDP_AUDIENCE = "seedos-api"


class KeyServer:
    """JSON documents by path on 127.0.0.1, with a count of the requests for each (``sized``
    False: sent without a length, ending when the connection closes)."""

    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self.hits: Counter[str] = Counter()
        self.sized = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                document = server.documents.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document is not None else 404)
                self.send_header("content-type", "application/json")
                if server.sized:
                    self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up
                    super().handle_error(request, client_address)

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve_keys(self, path: str, keys: list[Key]) -> None:
        self.documents[path] = {"keys": [k.as_dict(private=False) for k in keys]}

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class Rig:
    suite: Suite
    keys: KeyServer
    issuers: dict[str, str]  # by name: the exact iss
    supabase_key: ECKey
    idp_key: RSAKey
    rotating: list[ECKey]

    def url(self) -> str:
        return self.suite.gateway


@pytest.fixture(scope="module")
def rig(dsn, tmp_path_factory) -> Iterator[Rig]:
    keys = KeyServer()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    supabase_key = ECKey.generate_key("P-256", parameters={"kid": "sb-1"})
    idp_key = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    rotating = [ECKey.generate_key("P-256", parameters={"kid": "r-1"})]
    issuers = {
        "supabase": keys.url + "/project/auth/v1",
        "idp": keys.url + "/idp",
        "rotating": keys.url + "/rotating",
        "down": dead + "/down",
    }
    keys.serve_keys("/project/auth/v1/.well-known/jwks.json", [supabase_key])
    keys.documents["/idp/.well-known/openid-configuration"] = {
        "issuer": issuers["idp"], "jwks_uri": keys.url + "/idp/keys",
    }  # fmt: skip
    keys.serve_keys("/idp/keys", [idp_key])
    keys.serve_keys("/rotating/keys", rotating)
    config = {
        "supabase": {"kind": "supabase", "issuer": issuers["supabase"], "mode": "authoritative",
                     "hs256_secret": LEGACY_SECRET},
        "idp": {"kind": "oidc", "issuer": issuers["idp"], "audience": IDP_AUDIENCE},
        "rotating": {"kind": "oidc", "issuer": issuers["rotating"], "audience": "rot",
                     "jwks_uri": keys.url + "/rotating/keys", "mode": "authoritative",
                     "tenant_claim": "org.slug", "role_claim": "org.role"},
        "down": {"kind": "oidc", "issuer": issuers["down"], "audience": "x",
                 "jwks_uri": dead + "/keys"},
    }  # fmt: skip
    suite = start_suite(
        dsn, tmp_path_factory.mktemp("jwt") / "services.log",
        SEEDOS_GATEWAY_JWT_ISSUERS=json.dumps(config), SEEDOS_GATEWAY_JWT_TIMEOUT_SECONDS="1",
    )  # fmt: skip
    try:
        yield Rig(suite, keys, issuers, supabase_key, idp_key, rotating)
    finally:
        suite.supervisor.stop()
        keys.stop()


def sign(key: Key, claims: dict, *, alg: str, kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key, algorithms=[alg])


def supabase_claims(rig: Rig, *, app: dict, user: dict | None = None, **changes) -> dict:
    """What Supabase Auth puts in an access token (a signed-in user, password sign-in)."""
    now = int(time.time())
    claims = {
        "iss": rig.issuers["supabase"], "sub": str(uuid.uuid4()), "aud": "authenticated",
        "exp": now + 3600, "iat": now, "email": "ada@example.com", "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"], **app},
        "user_metadata": {"email_verified": True, **(user or {})},
        "role": "authenticated",  # the Postgres role: never ours
        "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()), "is_anonymous": False,
    }  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def idp_claims(rig: Rig, subject: str, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": rig.issuers["idp"], "sub": subject, "aud": IDP_AUDIENCE, "iat": now,
              "exp": now + 600, "scope": "openid"}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@asynccontextmanager
async def opened(url: str, headers: dict[str, str]) -> AsyncIterator[ClientWebSocketResponse]:
    """A sync socket, once the server's first sync message came."""
    async with ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        assert (await ws.receive(timeout=10)).type == WSMsgType.BINARY
        yield ws


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **headers}


def by_hand(header: dict, claims: dict | str, secret: bytes) -> str:
    """A token HMAC-signed with any bytes (joserfc will not take a public key as a secret);
    ``claims`` as a dict, or as the JSON text itself."""
    texts = [p if isinstance(p, str) else json.dumps(p) for p in (header, claims)]
    parts = [base64.urlsafe_b64encode(text.encode()).rstrip(b"=") for text in texts]
    signing_input = b".".join(parts)
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest() if secret else b""
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.fixture
async def tenant(rig, dsn) -> tuple[TenantKey, uuid.UUID]:
    """A tenant of its own with one integration installed."""
    t = await make_tenant(dsn)
    return t, await _integration(dsn, t.tenant_id)


async def acts_as(client: httpx.AsyncClient, headers: dict, integration: uuid.UUID) -> dict:
    """What the caller is (GET /api/v1/me), after checking that connector_service sees the same
    tenant (it lists the tenant's integration) and role (a write needs editor)."""
    me = await client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    listed = await client.get("/api/v1/integrations", headers=headers)
    assert listed.status_code == 200, listed.text
    assert str(integration) in {i["id"] for i in listed.json()["items"]}
    return me.json()


def refusal(r: httpx.Response, status: int = 401) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


# ------------------------------------------------------------------------------ Supabase


async def test_a_supabase_token_acts_as_its_app_metadata_says(rig, tenant) -> None:
    t, integration = tenant
    claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "editor"})
    token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        me = await acts_as(client, bearer(token), integration)
        assert me["auth_method"] == "jwt" and me["role"] == "editor"
        assert me["tenant"]["slug"] == t.slug
        assert me["subject"] == f"jwt:supabase:{claims['sub']}"
        # an editor writes: connector_service uninstalls it
        r = await client.delete(f"/api/v1/integrations/{integration}", headers=bearer(token))
        assert r.status_code == 204, r.text
        # the tenant by its id works as well
        by_id = supabase_claims(rig, app={"tenant_id": str(t.tenant_id), "role": "viewer"})
        me = (await client.get("/api/v1/me", headers=bearer(
            sign(rig.supabase_key, by_id, alg="ES256", kid="sb-1")))).json()  # fmt: skip
        assert (me["tenant"]["slug"], me["role"]) == (t.slug, "viewer")


async def test_a_legacy_supabase_token_signed_with_the_jwt_secret(rig, tenant) -> None:
    t, integration = tenant
    claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "viewer"})
    token = sign(OctKey.import_key(LEGACY_SECRET), claims, alg="HS256")  # legacy: no kid
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        me = await acts_as(client, bearer(token), integration)
        assert (me["auth_method"], me["role"]) == ("jwt", "viewer")
        # a viewer may not write, in connector_service too
        r = await client.delete(f"/api/v1/integrations/{integration}", headers=bearer(token))
        assert refusal(r, 403)["code"] == "forbidden"
        # signed with another secret: refused
        forged = sign(OctKey.import_key("x" * 48), claims, alg="HS256")
        r = await client.get("/api/v1/integrations", headers=bearer(forged))
        assert refusal(r)["reason"] == "bad_signature"


async def test_user_metadata_never_gives_a_role_or_tenant(rig, tenant) -> None:
    t, integration = tenant
    claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "viewer"},
                             user={"role": "admin", "tenant_id": "elsewhere"})  # fmt: skip
    token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        me = await acts_as(client, bearer(token), integration)
        assert (me["role"], me["tenant"]["slug"]) == ("viewer", t.slug)
        r = await client.delete(f"/api/v1/integrations/{integration}", headers=bearer(token))
        assert r.status_code == 403
        # only user_metadata (which the user edits): no role, no tenant
        claims = supabase_claims(rig, app={}, user={"role": "admin", "tenant_id": t.slug})
        token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
        assert refusal(await client.get("/api/v1/me", headers=bearer(token)), 403)["code"] in {
            "unknown_role", "unknown_tenant"}  # fmt: skip
        # nor is Supabase's own top-level role (the Postgres role) one of ours
        claims = supabase_claims(rig, app={"tenant_id": t.slug}, role="admin")
        token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
        r = await client.get("/api/v1/me", headers=bearer(token))
        assert refusal(r, 403)["code"] == "unknown_role"
        # a tenant nobody has
        claims = supabase_claims(rig, app={"tenant_id": "no-such-tenant", "role": "admin"})
        token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
        r = await client.get("/api/v1/me", headers=bearer(token))
        assert refusal(r, 403)["code"] == "unknown_tenant"


async def test_a_suspended_tenant_is_refused(rig, tenant, dsn) -> None:
    t, _ = tenant
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE tenants SET suspended_at = now() WHERE id = $1", t.tenant_id)
    finally:
        await conn.close()
    claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "admin"})
    token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        r = await client.get("/api/v1/integrations", headers=bearer(token))
        assert refusal(r, 403)["code"] == "tenant_suspended"


async def test_the_tenant_claim_is_an_id_or_else_a_slug(rig, dsn) -> None:
    """A UUID names a tenant by its id, never by its slug: a tenant whose slug is another's id
    (the slug rule allows a lowercase UUID) is not reached by it, whichever row comes first."""
    victim_id, only_a_slug = uuid.uuid4(), uuid.uuid4()
    victim_slug = f"t-{secrets.token_hex(5)}"
    conn = await asyncpg.connect(dsn)
    try:  # the look-alike first, so that a scan meets it before the victim
        await conn.executemany("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)", [
            (uuid.uuid4(), str(victim_id), "look-alike"), (victim_id, victim_slug, "victim"),
            (uuid.uuid4(), str(only_a_slug), "a slug shaped like an id"),
        ])  # fmt: skip
    finally:
        await conn.close()

    def naming(tenant: str) -> dict[str, str]:
        claims = supabase_claims(rig, app={"tenant_id": tenant, "role": "admin"})
        return bearer(sign(rig.supabase_key, claims, alg="ES256", kid="sb-1"))

    async with httpx.AsyncClient(base_url=rig.url()) as client:
        for named in (str(victim_id), str(victim_id).upper(), victim_slug):
            me = await client.get("/api/v1/me", headers=naming(named))
            assert me.status_code == 200, me.text
            assert me.json()["tenant"]["id"] == str(victim_id), named
        # an id no tenant has is not looked for among the slugs
        r = await client.get("/api/v1/me", headers=naming(str(only_a_slug)))
        assert refusal(r, 403)["code"] == "unknown_tenant"


async def test_a_long_non_ascii_subject_gets_a_ticket_or_a_clear_refusal(rig, tenant) -> None:
    """What a ticket stores of a JWT caller fits the table's 1024 bytes: a subject of 255
    two-byte characters does; one whose credential could not is refused as it authenticates
    (401 ``invalid_claim``), never a 500 when the ticket is stored."""
    t, integration = tenant
    ticket = f"/api/v1/integrations/{integration}/sync/ticket"

    def as_subject(sub: str) -> dict[str, str]:
        claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "editor"}, sub=sub)
        return bearer(sign(rig.supabase_key, claims, alg="ES256", kid="sb-1"))

    async with httpx.AsyncClient(base_url=rig.url()) as client:
        r = await client.post(ticket, headers=as_subject("é" * 255))
        assert r.status_code == 200, r.text
        for sub in ("😀" * 255, "\x01" * 255):  # 4 bytes each; 6 each as \u0001
            for r in (await client.get("/api/v1/me", headers=as_subject(sub)),
                      await client.post(ticket, headers=as_subject(sub))):  # fmt: skip
                problem = refusal(r)
                assert (problem["code"], problem["reason"]) == ("invalid_token", "invalid_claim")


# ------------------------------------------------------------------------------ refusals


async def test_what_is_refused_and_why(rig, tenant) -> None:
    t, integration = tenant
    app = {"tenant_id": t.slug, "role": "admin"}
    now = int(time.time())
    good = supabase_claims(rig, app=app)
    unsigned = by_hand({"alg": "none", "typ": "JWT"}, good, b"")
    # the old confusion: HS256 keyed with the issuer's public key, to an asymmetric issuer
    confused = by_hand({"alg": "HS256", "kid": "idp-1"}, idp_claims(rig, "someone"),
                       rig.idp_key.as_pem(private=False))  # fmt: skip
    cases = {
        "wrong_algorithm": [
            unsigned, confused, sign(ECKey.generate_key("P-384"), good, alg="ES384", kid="sb-1"),
        ],
        "wrong_audience": [sign(rig.supabase_key, {**good, "aud": "anon-app"}, alg="ES256",
                                kid="sb-1")],
        "unknown_issuer": [sign(rig.supabase_key, {**good, "iss": "https://evil.example/auth/v1"},
                                alg="ES256", kid="sb-1")],
        "unknown_kid": [sign(RSAKey.generate_key(2048), idp_claims(rig, "x"), alg="RS256",
                             kid="nope")],
        "bad_signature": [sign(ECKey.generate_key("P-256"), good, alg="ES256", kid="sb-1")],
        "expired": [sign(rig.supabase_key, {**good, "exp": now - 120}, alg="ES256", kid="sb-1")],
        "not_yet_valid": [sign(rig.supabase_key, {**good, "nbf": now + 120}, alg="ES256",
                               kid="sb-1")],
        "malformed": [
            "eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln",
            # an iss that is no string (nor a name to look up), claims nested thousands deep
            by_hand({"alg": "ES256", "kid": "sb-1"}, {**good, "iss": [good["iss"]]}, b"k"),
            by_hand({"alg": "ES256", "kid": "sb-1"}, {**good, "iss": {"a": good["iss"]}}, b"k"),
            by_hand({"alg": "ES256", "kid": "sb-1"}, "[" * 2000 + "]" * 2000, b"k"),
        ],
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        before = (await client.get("/metrics")).text
        for reason, tokens in cases.items():
            for token in tokens:
                r = await client.get("/api/v1/integrations", headers=bearer(token))
                problem = refusal(r)
                assert (problem["code"], problem["reason"]) == ("invalid_token", reason), token
                assert token not in r.text
        after = (await client.get("/metrics")).text
        for reason, tokens in cases.items():
            labels = {"method": "jwt", "reason": reason}
            counted = metric_total(after, "seedos_auth_failures_total", **labels) - metric_total(
                before, "seedos_auth_failures_total", **labels)  # fmt: skip
            assert counted == len(tokens), reason
        # within the leeway (30 s) an expired token is still good; nothing refused changed a thing
        late = sign(rig.supabase_key, {**good, "exp": now - 5}, alg="ES256", kid="sb-1")
        await acts_as(client, bearer(late), integration)
    logs = rig.suite.logs()
    assert all(token not in logs for tokens in cases.values() for token in tokens)


async def test_an_unknown_key_id_fetches_the_keys_again_once_a_minute(rig, dsn) -> None:
    t = await make_tenant(dsn)
    path = "/rotating/keys"

    def token(key: ECKey) -> str:
        now = int(time.time())
        claims = {"iss": rig.issuers["rotating"], "sub": "svc", "aud": "rot", "iat": now,
                  "exp": now + 600, "org": {"slug": t.slug, "role": "viewer"}}  # fmt: skip
        return sign(key, claims, alg="ES256", kid=key.kid)

    async with httpx.AsyncClient(base_url=rig.url()) as client:
        r = await client.get("/api/v1/me", headers=bearer(token(rig.rotating[0])))
        assert r.status_code == 200, r.text
        assert rig.keys.hits[path] == 1
        # the issuer rotates: the first token with the new key id makes one fetch ...
        new = ECKey.generate_key("P-256", parameters={"kid": "r-2"})
        rig.keys.serve_keys(path, [*rig.rotating, new])
        r = await client.get("/api/v1/me", headers=bearer(token(new)))
        assert r.status_code == 200, r.text
        assert rig.keys.hits[path] == 2
        # ... and made-up key ids within the minute make none
        for _ in range(3):
            made_up = ECKey.generate_key("P-256", parameters={"kid": f"x-{secrets.token_hex(3)}"})
            r = await client.get("/api/v1/me", headers=bearer(token(made_up)))
            assert refusal(r)["reason"] == "unknown_kid"
        assert rig.keys.hits[path] == 2
        r = await client.get("/api/v1/me", headers=bearer(token(new)))
        assert r.status_code == 200 and r.json()["subject"] == "jwt:rotating:svc"


async def test_an_issuer_whose_keys_cannot_be_fetched_is_a_fast_503(rig) -> None:
    now = int(time.time())
    claims = {"iss": rig.issuers["down"], "sub": "s", "aud": "x", "exp": now + 60}
    token = sign(ECKey.generate_key("P-256"), claims, alg="ES256", kid="k")
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        started = time.monotonic()
        r = await client.get("/api/v1/integrations", headers=bearer(token))
        assert refusal(r, 503)["code"] == "identity_provider_unavailable"
        assert time.monotonic() - started < 2.0


# ------------------------------------------------------------------------------ directory


async def test_a_directory_issuer_finds_the_person_and_their_membership(rig, dsn) -> None:
    first, second = await make_tenant(dsn), await make_tenant(dsn)
    integration = await _integration(dsn, second.tenant_id)
    conn = await asyncpg.connect(dsn)
    try:
        person = await make_person(
            conn, origin=rig.url(), issuer=rig.issuers["idp"], provider="idp",
            memberships={first.tenant_id: "viewer", second.tenant_id: "editor"},
        )  # fmt: skip
        single = await make_person(conn, origin=rig.url(), issuer=rig.issuers["idp"],
                                   provider="idp", memberships={first.tenant_id: "admin"})  # fmt: skip
    finally:
        await conn.close()
    token = sign(rig.idp_key, idp_claims(rig, person.subject), alg="RS256", kid="idp-1")
    async with httpx.AsyncClient(base_url=rig.url()) as client:
        # a member of two tenants says which
        r = await client.get("/api/v1/integrations", headers=bearer(token))
        assert refusal(r, 400)["code"] == "tenant_required"
        headers = bearer(token, **{"x-seedos-tenant": second.slug})
        me = await acts_as(client, headers, integration)
        assert (me["subject"], me["role"]) == (f"user:{person.user_id}", "editor")
        assert me["tenant"]["slug"] == second.slug
        r = await client.delete(f"/api/v1/integrations/{integration}", headers=headers)
        assert r.status_code == 204, r.text
        headers = bearer(token, **{"x-seedos-tenant": str(first.tenant_id)})
        me = (await client.get("/api/v1/me", headers=headers)).json()
        assert (me["tenant"]["slug"], me["role"]) == (first.slug, "viewer")
        r = await client.get("/api/v1/me", headers=bearer(token, **{"x-seedos-tenant": "nope"}))
        assert refusal(r, 403)["code"] == "not_a_member"
        # a member of one tenant needs no header
        token = sign(rig.idp_key, idp_claims(rig, single.subject), alg="RS256", kid="idp-1")
        me = (await client.get("/api/v1/me", headers=bearer(token))).json()
        assert (me["tenant"]["slug"], me["role"]) == (first.slug, "admin")
        # someone who never signed in here
        token = sign(rig.idp_key, idp_claims(rig, "stranger"), alg="RS256", kid="idp-1")
        r = await client.get("/api/v1/me", headers=bearer(token))
        problem = refusal(r)
        assert problem["code"] == "identity_not_linked" and "sign in once" in problem["detail"]


# ------------------------------------------------------------------------------ WebSocket


@pytest.mark.parametrize("by", ["ticket", "header"])
async def test_a_jwt_callers_socket_closes_when_the_token_expires(rig, tenant, by) -> None:
    t, integration = tenant
    claims = supabase_claims(rig, app={"tenant_id": t.slug, "role": "editor"},
                             exp=int(time.time()) + 4)  # fmt: skip
    token = sign(rig.supabase_key, claims, alg="ES256", kid="sb-1")
    url = rig.url().replace("http", "ws", 1) + f"/api/v1/integrations/{integration}/sync/ws"
    headers = bearer(token)
    if by == "ticket":  # as a browser does
        async with httpx.AsyncClient(base_url=rig.url()) as client:
            r = await client.post(f"/api/v1/integrations/{integration}/sync/ticket",
                                  headers=headers)  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["writable"] is True
        url, headers = f"{url}?ticket={r.json()['ticket']}", {}
    async with opened(url, headers=headers) as ws:
        assert await close_code(ws, within=claims["exp"] - time.time() + 5) == 1008
        assert time.time() >= claims["exp"]


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"algorithms": ["none"]}, "none never is"),
        ({"algorithms": ["HS256", "ES256"]}, "only with an explicit hs256_secret"),
        ({"hs256_secret": "short"}, "at least 32 characters"),
        ({"role_claim": "user_metadata.role"}, "never into user_metadata"),
        ({"tenant_claim": "user_metadata.tenant"}, "never into user_metadata"),
        ({"role_claim": "role"}, "Postgres role"),
        ({"issuer": "http://example.supabase.co/auth/v1"}, "https"),
        ({"leeway_seconds": 120}, "less than or equal to 60"),
        ({"kind": "oidc"}, "audience"),
        ({"kind": "oidc", "audience": "a", "hs256_secret": LEGACY_SECRET}, "kind supabase"),
    ],
)
def test_settings_refuse_what_would_be_unsafe(monkeypatch, change, refusal) -> None:
    issuer = {"kind": "supabase", "issuer": "https://ref.supabase.co/auth/v1", **change}
    monkeypatch.setenv("SEEDOS_GATEWAY_JWT_ISSUERS", json.dumps({"sb": issuer}))
    with pytest.raises(ValueError, match=refusal) as caught:
        GatewaySettings()
    assert LEGACY_SECRET not in str(caught.value)  # a refusal never shows the secret


def test_supabase_defaults() -> None:
    issuer = JwtIssuerSettings(kind="supabase", issuer="https://ref.supabase.co/auth/v1",
                               hs256_secret=LEGACY_SECRET)  # fmt: skip
    assert issuer.keys_url == "https://ref.supabase.co/auth/v1/.well-known/jwks.json"
    assert issuer.expected_audience == "authenticated"
    assert issuer.allowed_algorithms == ("ES256", "RS256", "HS256")
    assert issuer.claims == ("app_metadata.tenant_id", "app_metadata.role")
    assert LEGACY_SECRET not in repr(issuer)
