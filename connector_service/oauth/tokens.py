"""An install's OAuth tokens: stored encrypted in the credential store, handed to its connector,
refreshed before they expire (or once after the connector got a 401), revoked on uninstall.

The ConnectorManager calls :func:`call_credentials` before every connector call. Refreshes of
one install are serialized across replicas by a transaction-scoped advisory lock, and the
tokens are read again once it is held: with refresh-token rotation, two refreshes spending the
same refresh token would leave the second with ``invalid_grant``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import structlog

from common import audit
from common.crypto import DecryptionError, KeyRing
from common.db import Database
from connector_service.credentials import service as credentials_service
from connector_service.integrations import repository as integrations
from connector_service.oauth import provider, repository
from connector_service.oauth.config import Client, OAuthConfig
from connector_service.oauth.errors import (
    NotConnected,
    OAuthUrlRefused,
    ProviderError,
    ProviderNotAllowed,
    ReconnectRequired,
)
from seedos_sdk.declarative.templates import Template, TemplateProblem

log = structlog.get_logger(component="seedos.oauth")

PREFIX = "oauth."
PLATFORM_ONLY = ("webhook.",)  # the install's webhook token and secret: never a connector's
# Credential fields (names, not secrets) holding an oauth2 install's tokens and own client.
ACCESS_TOKEN = "oauth.access_token"  # noqa: S105
REFRESH_TOKEN = "oauth.refresh_token"  # noqa: S105
EXPIRES_AT = "oauth.expires_at"
CLIENT_ID = "oauth.client_id"
CLIENT_SECRET = "oauth.client_secret"  # noqa: S105
SYSTEM_ACTOR = "connector_service"


def auth_of(
    manifest: Mapping[str, Any] | None, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest's auth; with the install's ``config``, its OAuth URLs rendered with it when
    they name it (``https://{{ config.shop }}.myshopify.com/admin/oauth/authorize``)."""
    auth = (manifest or {}).get("auth")
    if not isinstance(auth, Mapping):
        return {}
    out = dict(auth)
    if config is None:
        return out
    for key in URL_FIELDS:
        if isinstance(out.get(key), str) and ("{{" in out[key] or "{%" in out[key]):
            out[key] = render_url(out[key], config, what=key)
    return out


URL_FIELDS = ("authorize_url", "token_url", "revoke_url")
# what a config value may put into an OAuth URL: a host name's letters, digits, dots and hyphens
# (a shop, a subdomain, a region), never a "/", "?", "#", "@" or ":" that would move the URL
_URL_PART = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
_EXPRESSION = re.compile(r"(\{\{.*?\}\})", re.S)


def render_url(template: str, config: Mapping[str, Any], *, what: str) -> str:
    """``template`` rendered with ``config``; refused unless each ``{{ }}`` became a host-name
    part (so no config value can send the client secret or a code to another host)."""
    if "{%" in template:
        raise OAuthUrlRefused(f"the {what} has a {{% %}} block: only {{{{ config.x }}}} is allowed")
    pattern = "".join(_URL_PART if _EXPRESSION.fullmatch(part) else re.escape(part)
                      for part in _EXPRESSION.split(template) if part)  # fmt: skip
    try:
        value = str(Template(template).render({"config": dict(config)}))
    except TemplateProblem as exc:
        raise OAuthUrlRefused(f"the {what} needs the install's config: {exc}") from None
    if not re.fullmatch(pattern, value):
        raise OAuthUrlRefused(f"the {what} made from this install's config is not a URL of the"
                              " provider's (a config value may hold letters, digits, dots and"
                              " hyphens only)")  # fmt: skip
    return value


def is_oauth2(manifest: Mapping[str, Any] | None) -> bool:
    return auth_of(manifest).get("scheme") == "oauth2"


def client_for(stored: Mapping[str, str], slug: str | None, config: OAuthConfig) -> Client | None:
    """The install's own OAuth app if it has one, else the platform's for its catalog entry."""
    if stored.get(CLIENT_ID) and stored.get(CLIENT_SECRET):
        return Client(stored[CLIENT_ID], stored[CLIENT_SECRET])
    return config.clients.get(slug) if slug else None


def for_connector(stored: Mapping[str, str]) -> dict[str, str]:
    """What the connector receives: its own secret fields and the access token; never the
    refresh token or a client secret."""
    out = {k: v for k, v in stored.items() if not k.startswith((PREFIX, *PLATFORM_ONLY))}
    if ACCESS_TOKEN in stored:
        out["access_token"] = stored[ACCESS_TOKEN]
    return out


def _expiring(stored: Mapping[str, str], margin: float) -> bool:
    expires = stored.get(EXPIRES_AT)
    return expires is not None and float(expires) - time.time() < margin


async def store_tokens(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    token: Mapping[str, Any],
    keep_refresh_token: bool,
) -> dict[str, str]:
    """Write a token response (encrypted). Without a refresh token in it the stored one is kept
    (a refresh) or dropped (a new grant); the same for an unknown expiry."""
    fields = {ACCESS_TOKEN: str(token["access_token"])}
    if token.get("refresh_token"):
        fields[REFRESH_TOKEN] = str(token["refresh_token"])
    expires_in = str(token.get("expires_in", "")).split(".")[0]
    if expires_in.isdigit():
        fields[EXPIRES_AT] = str(int(time.time()) + int(expires_in))
    await credentials_service.store(
        conn, ring, tenant_id=tenant_id, integration_id=integration_id, secrets=fields
    )
    stale = {EXPIRES_AT} - set(fields)
    if not keep_refresh_token:
        stale |= {REFRESH_TOKEN} - set(fields)
    if stale:
        await repository.delete_credential_fields(
            conn, tenant_id=tenant_id, integration_id=integration_id, fields=stale
        )
    return fields


async def call_credentials(
    db: Database,
    ring: KeyRing,
    *,
    integration: Mapping[str, Any],
    manifest: Mapping[str, Any],
    oauth: OAuthConfig,
    force_refresh: bool = False,
    rejected: str | None = None,
) -> dict[str, str]:
    """The credentials to send with a call to the install's connector.

    For an oauth2 install: ``{"access_token": ...}`` plus its other secret fields, refreshed
    first when it expires within ``oauth.refresh_margin`` seconds (60), when ``force_refresh``,
    or when the stored access token is still the ``rejected`` one (the connector answered 401
    with it: a caller that read the tokens after another refreshed them does not refresh
    again). Other schemes: the decrypted credentials as stored.

    Raises:
        NotConnected: an oauth2 install with no token yet (409 ``oauth_not_connected``).
        ReconnectRequired: the provider refused the refresh token (``invalid_grant``), or the
            token expired and there is no refresh token; the install is now ``error`` with a
            reason starting "reconnect" (409 ``reconnect_required``).
        ProviderUnavailable, ProviderTimeout, ProviderError: the provider is down, slow or
            broken (503/504/502); nothing was changed.
        ProviderNotAllowed: the manifest's token_url is outside the egress rule;
            nothing was sent there, and the install is now ``error`` ("endpoint not allowed:
            ...") as for a connector endpoint that is not allowed (422).
    """
    tenant_id, integration_id = integration["tenant_id"], integration["id"]
    async with db.connection() as conn:
        stored = await credentials_service.load(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id
        )
    if not is_oauth2(manifest):
        return {k: v for k, v in stored.items() if not k.startswith(PLATFORM_ONLY)}
    if ACCESS_TOKEN not in stored:
        raise NotConnected(f"integration {integration_id} has no connected account yet")
    current = stored[ACCESS_TOKEN]
    stale = force_refresh or rejected == current or _expiring(stored, oauth.refresh_margin)
    if stale:
        stored = await _refresh(
            db, ring, integration=integration, manifest=manifest, config=oauth,
            seen=rejected or current,
        )  # fmt: skip
    return for_connector(stored)


async def _refresh(
    db: Database,
    ring: KeyRing,
    *,
    integration: Mapping[str, Any],
    manifest: Mapping[str, Any],
    config: OAuthConfig,
    seen: str,
) -> dict[str, str]:
    """Refresh under the install's lock, unless another caller did while this one waited (the
    access token is no longer the one ``seen``). The lock's connection is held across the token
    request: the lock is what keeps a second refresh from spending the same refresh token."""
    try:
        return await _refresh_locked(
            db, ring, integration=integration, manifest=manifest, config=config, seen=seen
        )
    except ProviderNotAllowed as exc:
        await _not_allowed(db, integration, exc)
        raise


async def _not_allowed(
    db: Database, integration: Mapping[str, Any], exc: ProviderNotAllowed
) -> None:
    """Put the install in ``error`` with the reason connector calls give an endpoint that is not
    allowed: no refresh can work until the manifest (or the rule) changes."""
    integration_id = integration["id"]
    reason = f"endpoint not allowed: {exc.detail}"
    async with db.connection() as conn:
        await integrations.set_status(
            conn, integration["tenant_id"], integration_id, status="error", reason=reason,
            last_error=exc.detail,
        )  # fmt: skip
    log.warning("oauth_endpoint_not_allowed", integration_id=str(integration_id), reason=reason)


async def _refresh_locked(
    db: Database,
    ring: KeyRing,
    *,
    integration: Mapping[str, Any],
    manifest: Mapping[str, Any],
    config: OAuthConfig,
    seen: str,
) -> dict[str, str]:
    tenant_id, integration_id = integration["tenant_id"], integration["id"]
    async with db.connection() as conn, conn.transaction():
        await repository.lock_refresh(conn, integration_id)
        stored = await credentials_service.load(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id
        )
        current = stored.get(ACCESS_TOKEN)
        if current is None:
            raise NotConnected(f"integration {integration_id} has no connected account")
        if current != seen and not _expiring(stored, 0):
            return stored  # refreshed by someone else meanwhile, and still valid
        waiting = await _reconnect_reason(conn, tenant_id, integration_id)
        if waiting is not None:
            # another caller's refresh was refused while this one waited (or earlier): the
            # refresh token is dead, so spending it again would only audit the same thing twice
            raise ReconnectRequired(waiting, integration_id=str(integration_id))
        reason = await _try_refresh(
            conn, ring, stored=stored, integration=integration, manifest=manifest,
            config=config,
        )  # fmt: skip
        if reason is None:
            return await credentials_service.load(
                conn, ring, tenant_id=tenant_id, integration_id=integration_id
            )
        await integrations.set_status(
            conn, tenant_id, integration_id, status="error", reason=reason,
            last_error=reason, even_if_disabled=True,
        )  # fmt: skip
        await audit.record(
            conn, tenant_id=tenant_id, actor=SYSTEM_ACTOR,
            action="integration.reconnect_required",
            payload={"integration_id": str(integration_id), "reason": reason},
        )  # fmt: skip
    log.warning("oauth_reconnect_required", integration_id=str(integration_id), reason=reason)
    raise ReconnectRequired(reason, integration_id=str(integration_id))


async def _reconnect_reason(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> str | None:
    """Why the install already waits for a reconnect, or None. Only a new connection (the
    callback sets the install active) clears this."""
    row = await integrations.get(conn, tenant_id, integration_id)
    if row is None or row["status"] != "error":
        return None
    reason = row["status_reason"] or ""
    return reason if reason.startswith("reconnect") else None


async def _try_refresh(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    stored: Mapping[str, str],
    integration: Mapping[str, Any],
    manifest: Mapping[str, Any],
    config: OAuthConfig,
) -> str | None:
    """Refresh and store the new tokens; ``None`` on success, else why a reconnect is needed."""
    refresh_token = stored.get(REFRESH_TOKEN)
    if not refresh_token:
        return "reconnect: the access token expired and there is no refresh token"
    token_url = auth_of(manifest, integration.get("config") or {}).get("token_url")
    if not token_url:
        raise ProviderError("the connector's manifest has no token_url")
    slug = await repository.catalog_slug(conn, integration.get("marketplace_connector_id"))
    client = client_for(stored, slug or manifest.get("name"), config)
    if client is None:
        raise ProviderError(f"no OAuth client configured for '{slug}'", code="oauth_client_missing")
    try:
        token = await provider.refresh(
            client, policy=config.policy, token_url=token_url, refresh_token=refresh_token,
            timeout_seconds=config.timeout,
        )  # fmt: skip
    except provider.Refused as exc:
        if exc.error == "invalid_grant":
            return "reconnect: the provider refused the refresh token (invalid_grant)"
        raise ProviderError(f"the provider refused the refresh: {exc.error}") from None
    await store_tokens(
        conn, ring, tenant_id=integration["tenant_id"], integration_id=integration["id"],
        token=token, keep_refresh_token=True,
    )  # fmt: skip
    log.info(
        "oauth_refreshed",
        integration_id=str(integration["id"]),
        rotated=bool(token.get("refresh_token")) and token.get("refresh_token") != refresh_token,
    )
    return None


async def revoke_tokens(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    integration: Mapping[str, Any],
    manifest: Mapping[str, Any] | None,
    oauth: OAuthConfig,
) -> str:
    """Revoke the install's tokens at the provider (RFC 7009), best effort, each request within
    ``oauth.revoke_timeout`` seconds (3). Returns the outcome for the audit log: ``revoked``,
    ``not_oauth``, ``no_tokens``, ``not_supported`` (no revoke_url in the manifest) or
    ``failed: <why>`` (``failed: endpoint not allowed: ...`` when the revoke_url is outside the
    egress rule: nothing was sent). Never raises for the provider's sake."""
    if not is_oauth2(manifest):
        return "not_oauth"
    tenant_id, integration_id = integration["tenant_id"], integration["id"]
    try:
        stored = await credentials_service.load(
            conn, ring, tenant_id=tenant_id, integration_id=integration_id
        )
    except DecryptionError:  # e.g. its key left the ring: nothing to revoke with, go on
        return "failed: the tokens do not decrypt"
    kinds = ((REFRESH_TOKEN, "refresh_token"), (ACCESS_TOKEN, "access_token"))
    tokens = [(stored[field], hint) for field, hint in kinds if field in stored]
    if not tokens:
        return "no_tokens"
    try:
        revoke_url = auth_of(manifest, integration.get("config") or {}).get("revoke_url")
    except OAuthUrlRefused as exc:
        return f"failed: {exc.detail or exc.title}"
    if not revoke_url:
        return "not_supported"
    slug = await repository.catalog_slug(conn, integration.get("marketplace_connector_id"))
    client = client_for(stored, slug or (manifest or {}).get("name"), oauth)
    if client is None:
        return "failed: no OAuth client configured"
    # The refresh token first: revoking it ends the grant at most providers.
    for token, hint in tokens:
        why = await provider.revoke(
            client, policy=oauth.policy, revoke_url=revoke_url, token=token, hint=hint,
            timeout_seconds=oauth.revoke_timeout,
        )  # fmt: skip
        if why:
            return f"failed: {why}"
    return "revoked"
