"""Connecting an install's third-party account: authorization code with PKCE (S256).

``connect`` records a single-use state (its SHA-256 only, with the PKCE verifier and the
provider's authorization URL encrypted) and answers a gateway *start* URL with a single-use
token, never the provider's URL. Opening the start URL (:func:`start`) uses the token up, binds
the connect to a random value it sets as a cookie in that browser, and redirects to the
provider; the provider sends the browser back to the public callback, which the state and that
cookie authorize together: the state is consumed first, in its own transaction, so it cannot be
replayed whatever happens next; a browser without the connect's cookie is refused (and the
refusal audited); then the code is exchanged (no database connection is held meanwhile) and
the tokens stored encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import structlog

from common import audit
from common.crypto import Envelope, KeyRing, associated_data
from common.db import Database
from common.internal_auth import Principal
from common.roles import Permission, allows
from connector_service.credentials import service as credentials_service
from connector_service.integrations import repository as integrations
from connector_service.integrations.service import IntegrationNotFound
from connector_service.manager.errors import UpdateRequired
from connector_service.oauth import provider, repository, tokens
from connector_service.oauth.config import OAuthConfig
from connector_service.oauth.errors import (
    AccessDenied,
    BindingMismatch,
    ExchangeFailed,
    IntegrationDisabled,
    InvalidReturnTo,
    OAuthClientMissing,
    OAuthNotSupported,
    ProviderError,
    StartExpired,
    StartInvalid,
    StartOtherPerson,
    StateExpired,
    StateInvalid,
    TenantSuspended,
)

log = structlog.get_logger(component="seedos.oauth")

STATE_TTL_SECONDS = 600
VERIFIER_FIELD = "oauth.pkce_verifier"
URL_FIELD = "oauth.authorization_url"
CONNECTED_REASON = "connected: waiting for a check"


def state_hash(state: str) -> bytes:
    """SHA-256, as states, start tokens and bindings are stored."""
    return hashlib.sha256(state.encode()).digest()


def check_return_to(value: str | None, public_url: str) -> str | None:
    """A path on this site, or a URL on the public URL's origin; anything else could send the
    user elsewhere after connecting (an open redirect)."""
    if value is None:
        return None
    if any(ord(c) < 0x21 or c == "\\" for c in value) or len(value) > 2000:
        raise InvalidReturnTo("return_to has characters a URL cannot have")
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        if value.startswith("/") and not value.startswith("//"):
            return value
        raise InvalidReturnTo("return_to must be an absolute path such as /dashboard")
    public = urlsplit(public_url)
    if (parts.scheme, parts.netloc.lower()) != (public.scheme, public.netloc.lower()):
        raise InvalidReturnTo(f"return_to must be on {public.scheme}://{public.netloc}")
    return value


async def _oauth_install(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> asyncpg.Record:
    row = await repository.integration(conn, tenant_id, integration_id)
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    if not tokens.is_oauth2(row["manifest"]):
        raise OAuthNotSupported(
            f"integration {integration_id}'s connector does not use OAuth 2.0: set its"
            " credentials with PUT .../credentials"
        )
    return row


def _not_withdrawn(row: asyncpg.Record) -> None:
    """Nothing goes to the OAuth URLs of a version its publisher withdrew (409
    ``update_required``): the install is upgraded first."""
    if row["withdrawn_reason"] is not None:
        raise UpdateRequired.of(row["version"], row["withdrawn_reason"], before="connecting it")


async def connect(
    conn: asyncpg.Connection,
    ring: KeyRing,
    config: OAuthConfig,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    user: str,
    return_to: str | None,
) -> dict[str, Any]:
    row = await _oauth_install(conn, tenant_id, integration_id)
    if row["status"] == "disabled":
        raise IntegrationDisabled("enable the integration before connecting its account")
    _not_withdrawn(row)
    return_to = check_return_to(return_to, config.public_url)
    auth = tokens.auth_of(row["manifest"], row["config"])
    if not auth.get("authorize_url") or not auth.get("token_url"):
        raise OAuthNotSupported("the connector's manifest has no authorize_url or token_url")
    stored = await credentials_service.load(
        conn, ring, tenant_id=tenant_id, integration_id=integration_id
    )
    client = tokens.client_for(stored, row["slug"], config)
    if client is None:
        raise OAuthClientMissing(
            f"no OAuth client for '{row['slug']}': the platform sets one in"
            " SEEDOS_CONNECTOR_OAUTH_CLIENTS, or set this install's with PUT .../oauth/client"
        )
    await provider.check_endpoint(config.policy, auth["token_url"], what="token_url")
    scopes = list((row["api_spec"] or {}).get("scopes") or auth.get("scopes") or [])
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    start_token = secrets.token_urlsafe(32)
    url = await provider.authorization_url(
        client_id=client.client_id, authorize_url=auth["authorize_url"],
        redirect_uri=config.redirect_uri, scopes=scopes, state=state, code_verifier=verifier,
        extra=auth.get("authorize_params") or {},
        scope_separator=auth.get("scope_separator") or " ",
    )  # fmt: skip
    await repository.delete_expired_states(conn, older_than_seconds=STATE_TTL_SECONDS)
    expires_at = await repository.insert_state(
        conn, state_hash=state_hash(state), start_hash=state_hash(start_token),
        tenant_id=tenant_id, integration_id=integration_id, user_id=user,
        redirect_uri=config.redirect_uri, return_to=return_to, scopes=scopes,
        verifier=ring.encrypt(verifier.encode(),
                              aad=associated_data(tenant_id, integration_id, VERIFIER_FIELD)),
        authorization_url=ring.encrypt(url.encode(),
                                       aad=associated_data(tenant_id, integration_id, URL_FIELD)),
        ttl_seconds=STATE_TTL_SECONDS,
    )  # fmt: skip
    # never the provider's URL: opened elsewhere, it would skip binding the browser
    return {"authorization_url": config.start_url(start_token), "expires_at": expires_at}


@dataclass(frozen=True)
class Started:
    authorization_url: str = field(repr=False)  # the provider's, with the state
    binding: str = field(repr=False)  # the cookie's value for this browser


async def start(
    conn: asyncpg.Connection, ring: KeyRing, *, token: str | None, opener: Principal | None
) -> Started:
    """The browser opening a connect's start URL: use the token up, bind the connect to a new
    random value (only its hash stored) for this browser's cookie, and answer the provider's
    authorization URL to redirect it to. Refused (400) for an unknown, used or expired token,
    and (403) when a signed-in person started the connect and ``opener`` (who the gateway
    found signed in in this browser) is someone else: the link was passed on."""
    if not token:
        raise StartInvalid("the link has no token: start the connect again")
    binding = secrets.token_urlsafe(32)
    row = await repository.open_start(
        conn, start_hash=state_hash(token), binding_hash=state_hash(binding),
        opener=opener.subject if opener is not None else None,
    )  # fmt: skip
    if row is None:
        owner = await repository.start_owner(conn, state_hash(token))
        if owner is not None:
            log.warning("oauth_connect_start_refused", reason="another_person")
            raise StartOtherPerson(
                "this connect was started by someone else: sign in as them, or start your own"
            )
        raise StartInvalid("this connect link is unknown or was opened already: start it again")
    if row["expired"]:
        raise StartExpired("this connect link is older than 10 minutes: start it again")
    tenant_id, integration_id = row["tenant_id"], row["integration_id"]
    if (
        opener is not None
        and row["person"]
        and (opener.tenant_id != tenant_id or not allows(opener.role, Permission.write))
    ):  # the person who started it, but no longer a member who may connect (removed, demoted)
        raise StartOtherPerson("you may no longer connect accounts in this tenant")
    if row["suspended"]:
        raise TenantSuspended("the tenant is suspended: nothing can be connected to it")
    envelope = Envelope(
        row["url_key_id"], row["url_wrapped_key"], row["url_nonce"], row["url_ciphertext"]
    )
    url = ring.decrypt(envelope, aad=associated_data(tenant_id, integration_id, URL_FIELD))
    log.info("oauth_connect_started", integration_id=str(integration_id))
    return Started(url.decode(), binding)


def _binding_refusal(pending: asyncpg.Record, binding: str | None) -> str | None:
    """Why this browser may not complete the connect (a reason for the audit), or None. The
    hashes are compared in constant time."""
    if pending["binding_hash"] is None:
        return "start_url_not_opened"
    if not binding:
        return "no_binding_cookie"
    if not hmac.compare_digest(state_hash(binding), pending["binding_hash"]):
        return "binding_mismatch"
    return None


async def _refuse_binding(
    db: Database, pending: asyncpg.Record, *, reason: str, request_id: str | None
) -> None:
    """Audit, in the connect's tenant, a callback refused for coming to another browser."""
    integration_id = pending["integration_id"]
    async with db.connection() as conn, conn.transaction():
        await audit.record(
            conn, tenant_id=pending["tenant_id"], actor=pending["user_id"],
            action="integration.connect_refused", target=f"integration:{integration_id}",
            payload={"integration_id": str(integration_id), "reason": reason},
            request_id=request_id,
        )  # fmt: skip
    log.warning("oauth_connect_refused", integration_id=str(integration_id), reason=reason)


@dataclass(frozen=True)
class Connected:
    tenant_id: uuid.UUID
    integration_id: uuid.UUID
    return_to: str | None


async def complete(
    db: Database,
    ring: KeyRing,
    config: OAuthConfig,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    binding: str | None,
    request_id: str | None,
) -> Connected:
    """The provider's redirect back: consume the state (committed even if what follows fails),
    check that this browser opened the connect's start URL (``binding``: its cookie's value),
    exchange the code, store the tokens, make the install pending, audit."""
    if not state:
        raise StateInvalid("the callback has no state")
    async with db.connection() as conn:
        pending = await repository.consume_state(conn, state_hash(state))
    if pending is None:
        raise StateInvalid("this connect is unknown or was completed already: start it again")
    if pending["expired"]:
        raise StateExpired("this connect took longer than 10 minutes: start it again")
    if pending["suspended"]:  # since the connect began: the state is used up, nothing is stored
        raise TenantSuspended("the tenant is suspended: nothing was connected")
    if reason := _binding_refusal(pending, binding):
        await _refuse_binding(db, pending, reason=reason, request_id=request_id)
        raise BindingMismatch(
            "this connect was started in another browser (or another connect was started in"
            " this one since): nothing was connected; start it again in the browser that will"
            " approve it",
            reason=reason,
        )
    tenant_id, integration_id = pending["tenant_id"], pending["integration_id"]
    if error:
        raise AccessDenied(
            f"the provider answered {provider.safe_error_code(error)}: nothing was connected",
            error=provider.safe_error_code(error),
        )
    if not code:
        raise StateInvalid("the callback has neither a code nor an error")
    envelope = Envelope(
        pending["key_id"], pending["wrapped_key"], pending["nonce"], pending["ciphertext"]
    )
    verifier = ring.decrypt(
        envelope, aad=associated_data(tenant_id, integration_id, VERIFIER_FIELD)
    ).decode()
    async with db.connection() as conn:
        row = await _oauth_install(conn, tenant_id, integration_id)
        _not_withdrawn(row)  # withdrawn since the connect began: the code is not exchanged
        stored = await credentials_service.load(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id
        )
    client = tokens.client_for(stored, row["slug"], config)
    token_url = tokens.auth_of(row["manifest"], row["config"]).get("token_url")
    if client is None or not token_url:
        raise ProviderError("the install's OAuth client or token URL is gone")
    try:
        token = await provider.exchange_code(
            client, policy=config.policy, token_url=token_url, code=code, code_verifier=verifier,
            redirect_uri=pending["redirect_uri"], timeout_seconds=config.timeout,
        )  # fmt: skip
    except provider.Refused as exc:
        raise ExchangeFailed(
            f"the provider refused the code ({exc.error}): start the connect again",
            error=exc.error,
        ) from None
    async with db.connection() as conn, conn.transaction():
        if await repository.integration(conn, tenant_id, integration_id) is None:
            raise IntegrationNotFound(f"integration {integration_id} was uninstalled meanwhile")
        await tokens.store_tokens(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id, token=token,
            keep_refresh_token=False,
        )  # fmt: skip
        await integrations.set_status(
            conn, tenant_id, integration_id, status="pending", reason=CONNECTED_REASON,
            last_error=None, clear_error=True,
        )  # fmt: skip
        await audit.record(
            conn, tenant_id=tenant_id, actor=pending["user_id"], action="integration.connected",
            payload={
                "integration_id": str(integration_id), "connector": row["slug"],
                "scopes": list(pending["scopes"]), "granted_scope": token.get("scope"),
                "refresh_token": bool(token.get("refresh_token")),
            },
            request_id=request_id,
        )  # fmt: skip
    log.info("oauth_connected", integration_id=str(integration_id))
    return Connected(tenant_id, integration_id, pending["return_to"])


async def client_status(
    conn: asyncpg.Connection,
    config: OAuthConfig,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
) -> dict[str, Any]:
    row = await _oauth_install(conn, tenant_id, integration_id)
    fields = set(
        await credentials_service.fields_set(
            conn, tenant_id=tenant_id, integration_id=integration_id
        )
    )
    return {
        "override": {tokens.CLIENT_ID, tokens.CLIENT_SECRET} <= fields,
        "platform_client": row["slug"] in config.clients,
        "connected": tokens.ACCESS_TOKEN in fields,
    }


async def set_client(
    conn: asyncpg.Connection,
    ring: KeyRing,
    config: OAuthConfig,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    client_id: str | None,
    client_secret: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """Bring your own app: this install's client id and secret (stored encrypted), or none
    (``None``: back to the platform's)."""
    await _oauth_install(conn, tenant_id, integration_id)
    if client_id is None or client_secret is None:
        await repository.delete_credential_fields(
            conn, tenant_id=tenant_id, integration_id=integration_id,
            fields=(tokens.CLIENT_ID, tokens.CLIENT_SECRET),
        )  # fmt: skip
    else:
        await credentials_service.store(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id,
            secrets={tokens.CLIENT_ID: client_id, tokens.CLIENT_SECRET: client_secret},
        )  # fmt: skip
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor,
        action="integration.oauth_client_set" if client_id else "integration.oauth_client_removed",
        payload={"integration_id": str(integration_id)}, request_id=request_id,
    )  # fmt: skip
    return await client_status(conn, config, tenant_id=tenant_id, integration_id=integration_id)
