"""What platform operators do: create, list, suspend and resume tenants; and who operators are.

An operator stands outside every tenant. They are made by the configuration (a provider's
``operators`` subjects, on sign-in) or by ``seedos operator add``. Suspending a tenant keeps
its data, members and sessions: the gateway refuses its requests (403 ``tenant_suspended``)
and connector_service's scheduler skips its installs until it is resumed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any, Literal

import asyncpg

from common import audit
from common.errors import Conflict, InvalidRequest
from common.pagination import decode_cursor, encode_cursor
from common.roles import Role
from gateway.admin import repository
from gateway.invitations import service as invitations
from gateway.settings import GatewaySettings
from gateway.tenants import service as tenants
from gateway.tenants.service import TenantNotFound
from gateway.users import repository as users
from gateway.users.service import UserNotFound

Status = Literal["active", "suspended"]
REASON_MAX = 500  # the tenants_suspended_reason_length check


class AmbiguousEmail(Conflict):
    code, title = "email_ambiguous", "Several users have this email"


# ------------------------------------------------------------------------------ tenants


async def list_tenants(
    conn: asyncpg.Connection, *, status: Status | None = None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of every tenant on the platform, in slug order."""
    key = decode_cursor(cursor, parse=(str,))
    rows = await repository.list_tenants(
        conn, suspended=None if status is None else status == "suspended",
        after_slug=key[0] if key else None, limit=limit + 1,
    )  # fmt: skip
    items = [_tenant(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["slug"]]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


async def get_tenant(conn: asyncpg.Connection, slug: str) -> dict[str, Any]:
    row = await repository.get_tenant(conn, slug)
    if row is None:
        raise TenantNotFound(f"no tenant with slug '{slug}'")
    return _tenant(row)


async def create_tenant(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    industry: str | None = None,
    size: int | None = None,
    actor: str,
    admin_email: str | None = None,
    invitation_days: float = 7.0,
    public_url: str = "",
    request_id: str | None = None,
) -> tuple[dict[str, Any], invitations.Created | None]:
    """A new tenant with no members (audited as ``tenant.created`` in its own chain), and with
    ``admin_email`` an invitation of that address as its admin (``invitation.created``)."""
    tenant = await tenants.create(
        conn, slug=slug, name=name, industry=industry, size=size, actor=actor
    )
    created = None
    if admin_email is not None:
        created = await invitations.create(
            conn, tenant_id=tenant["id"], email=admin_email, role=Role.admin, invited_by=actor,
            inviter_role=None, valid_days=invitation_days, public_url=public_url,
            request_id=request_id,
        )  # fmt: skip
    return await get_tenant(conn, slug), created


async def suspend(
    conn: asyncpg.Connection,
    slug: str,
    *,
    reason: str,
    actor: str,
    request_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Suspend the tenant; returns (tenant, whether it changed). A suspended tenant stays as it
    is (its first reason kept) and nothing is recorded. Audited as ``tenant.suspended``."""
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX or "\x00" in reason:
        raise InvalidRequest(f"a reason is 1-{REASON_MAX} characters", code="invalid_reason")
    row = await repository.lock_tenant(conn, slug)
    if row is None:
        raise TenantNotFound(f"no tenant with slug '{slug}'")
    changed = row["suspended_at"] is None
    if changed:
        await repository.set_suspended(conn, row["id"], reason=reason)
        await audit.record(
            conn, tenant_id=row["id"], actor=actor, action="tenant.suspended",
            target=f"tenant:{row['id']}", payload={"slug": slug, "reason": reason},
            request_id=request_id,
        )  # fmt: skip
    return await get_tenant(conn, slug), changed


async def resume(
    conn: asyncpg.Connection, slug: str, *, actor: str, request_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Lift a suspension; returns (tenant, whether it changed). Resuming an active tenant
    changes and records nothing. Audited as ``tenant.resumed``."""
    row = await repository.lock_tenant(conn, slug)
    if row is None:
        raise TenantNotFound(f"no tenant with slug '{slug}'")
    changed = row["suspended_at"] is not None
    if changed:
        await repository.clear_suspended(conn, row["id"])
        await audit.record(
            conn, tenant_id=row["id"], actor=actor, action="tenant.resumed",
            target=f"tenant:{row['id']}",
            payload={"slug": slug, "suspended_at": row["suspended_at"].isoformat(),
                     "reason": row["suspended_reason"]},
            request_id=request_id,
        )  # fmt: skip
    return await get_tenant(conn, slug), changed


def _tenant(row: asyncpg.Record) -> dict[str, Any]:
    tenant = dict(row)
    tenant["status"] = "suspended" if row["suspended_at"] is not None else "active"
    return tenant


# ------------------------------------------------------------------------------ operators


async def ensure_configured_operator(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    provider_name: str,
    subject: str,
    settings: GatewaySettings,
) -> bool:
    """Called at sign-in: whether the user is a platform operator once the configuration has
    been applied.

    A subject listed in the provider's ``operators`` is made an operator (``added_by``
    ``config:<provider>``, audited as ``operator.added`` in the system chain). One the same
    provider's list made an operator and that is no longer listed stops being one
    (``operator.removed``); operators added otherwise (``seedos operator add``) are left as
    they are."""
    provider = settings.oidc_providers.get(provider_name)
    listed = provider is not None and subject in provider.operators
    by = f"config:{provider_name}"
    if listed:
        if await users.add_operator(conn, user_id, added_by=by):
            await _audit_operator(conn, "operator.added", user_id, actor=by,
                                  payload={"provider": provider_name})  # fmt: skip
        return True
    added_by = await repository.operator_added_by(conn, user_id)
    if added_by == by:
        await repository.remove_operator(conn, user_id)
        await _audit_operator(conn, "operator.removed", user_id, actor=by,
                              payload={"provider": provider_name})  # fmt: skip
        return False
    return added_by is not None


async def find_user(
    conn: asyncpg.Connection,
    *,
    email: str | None = None,
    issuer: str | None = None,
    subject: str | None = None,
    vouching: Collection[str] | None = None,
) -> dict[str, Any]:
    """The user with this verified email (from one of the ``vouching`` providers, when given),
    or with this identity (issuer and subject). Only a
    user who has signed in once exists. Several users with the email: :class:`AmbiguousEmail`,
    naming each one's identities so that the caller can choose by issuer and subject."""
    if issuer is not None and subject is not None:
        row = await repository.identity_user(conn, issuer=issuer, subject=subject)
        if row is None:
            raise UserNotFound(
                f"nobody has signed in as subject '{subject}' of '{issuer}': they must sign in once"
            )
        return dict(row)
    if email is None:
        raise InvalidRequest("give an email, or an issuer and a subject", code="invalid_input")
    rows = await repository.users_with_verified_email(conn, email)
    if vouching is not None:  # providers whose verified emails count (the platform's)
        others = [r for r in rows if r["provider"] not in vouching]
        rows = [r for r in rows if r["provider"] in vouching]
        if not rows and others:
            listed = "; ".join(f"--issuer {r['issuer']} --subject {r['subject']}" for r in others)
            raise UserNotFound(
                f"'{email}' is verified only by providers that do not vouch for it here (a"
                f" tenant's SSO, or one not in SEEDOS_GATEWAY_OIDC_PROVIDERS): if you trust"
                f" one, choose it with {listed}"
            )
    if not rows:
        raise UserNotFound(
            f"no user has signed in with the verified email '{email}': they must sign in once"
        )
    if len({r["user_id"] for r in rows}) > 1:
        listed = "; ".join(f"--issuer {r['issuer']} --subject {r['subject']}" for r in rows)
        raise AmbiguousEmail(
            f"{len({r['user_id'] for r in rows})} users have the verified email '{email}':"
            f" choose one with {listed}"
        )
    return dict(rows[0])


async def add_operator(conn: asyncpg.Connection, user_id: uuid.UUID, *, actor: str) -> bool:
    """Make the user an operator; False (and nothing recorded) when they are one already."""
    added = await users.add_operator(conn, user_id, added_by=actor)
    if added:
        await _audit_operator(conn, "operator.added", user_id, actor=actor, payload={})
    return added


async def remove_operator(conn: asyncpg.Connection, user_id: uuid.UUID, *, actor: str) -> bool:
    """False (and nothing recorded) when the user was not an operator. An operator the
    configuration lists becomes one again at their next sign-in: remove them there too."""
    added_by = await repository.remove_operator(conn, user_id)
    if added_by is not None:
        await _audit_operator(conn, "operator.removed", user_id, actor=actor,
                              payload={"added_by": added_by})  # fmt: skip
    return added_by is not None


async def list_operators(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await repository.operators(conn)]


async def _audit_operator(
    conn: asyncpg.Connection, action: str, user_id: uuid.UUID, *, actor: str, payload: dict
) -> None:
    # operators belong to no tenant: the system chain
    await audit.record(
        conn, tenant_id=None, actor=actor, action=action, target=f"user:{user_id}",
        payload=payload,
    )  # fmt: skip
