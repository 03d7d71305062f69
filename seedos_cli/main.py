"""``seedos``: run, migrate and administer the suite."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from common import audit, credential_keys, db, migrate, service_keys
from common.crypto import DecryptionError, KeyRing
from common.errors import SeedosError
from common.roles import Role
from common.settings import CommonSettings
from connector_service.credentials import service as credentials
from connector_service.settings import ConnectorServiceSettings
from gateway.admin import service as admin
from gateway.api_keys import service as api_keys
from gateway.domains import service as domains
from gateway.invitations import mailer
from gateway.invitations import service as invitations
from gateway.members import service as members
from gateway.settings import GatewaySettings
from gateway.tenants import service as tenants
from gateway.users import service as users
from seedos_cli import catalog, demo, deployment_keys
from seedos_cli.database import database
from seedos_cli.up import SuiteError, run_suite

app = typer.Typer(
    help="SEED-OS Integration Layer: run and administer the suite.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Deployment secrets: generate them, rotate signing keys and the credential key ring.",
    no_args_is_help=True,
)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)
operator_app = typer.Typer(help="Manage platform operators.", no_args_is_help=True)
users_app = typer.Typer(help="Look up users and link two into one.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(tenant_app, name="tenants", hidden=True)  # the plural answers as well
app.add_typer(operator_app, name="operator")
app.add_typer(users_app, name="users")
app.add_typer(apikey_app, name="apikey")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
members_app = typer.Typer(help="Manage a tenant's members.", no_args_is_help=True)
invitations_app = typer.Typer(help="Invite people to a tenant.", no_args_is_help=True)
domains_app = typer.Typer(help="Email domains whose people join a tenant.", no_args_is_help=True)
app.add_typer(members_app, name="members")
app.add_typer(invitations_app, name="invitations")
app.add_typer(domains_app, name="domains")
catalog_app = typer.Typer(help="The connector catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

T = TypeVar("T")


S = TypeVar("S", bound=CommonSettings)


def _settings(cls: type[S]) -> S:
    try:
        return cls()
    except ValueError as exc:
        typer.secho(f"configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[Any], Awaitable[T]], *, transaction: bool = True) -> T:
    """Run ``work(conn)`` against the configured database, in one transaction by default."""
    settings = _settings(CommonSettings)

    async def main(dsn: str) -> T:
        conn = await db.connect(dsn)
        try:
            if not transaction:
                return await work(conn)
            async with conn.transaction():
                return await work(conn)
        finally:
            await conn.close()

    with database(settings) as dsn:
        try:
            return asyncio.run(main(dsn))
        except (SeedosError, migrate.MigrationError, ValueError) as exc:
            message = exc.detail or exc.title if isinstance(exc, SeedosError) else str(exc)
            typer.secho(f"error: {message}", fg="red", err=True)
            raise typer.Exit(1) from None


@app.command("migrate")
def migrate_cmd(
    directory: Annotated[
        Path | None, typer.Option(help="Folder of YYYYMMDDHHMMSS_name.sql files")
    ] = None,
) -> None:
    """Apply pending migrations (a no-op when up to date)."""

    async def work(conn: Any) -> list[str]:
        return await migrate.apply(conn, directory)

    applied = _run(work, transaction=False)  # each migration file is its own transaction
    typer.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo tenant (slug 'demo') and load the connector catalog. Idempotent."""
    result = _run(demo.seed)
    demo.warn_skipped(result["catalog_skipped"])
    typer.echo(
        f"demo tenant '{result['tenant']['slug']}' ready; "
        f"{result['catalog_entries']} catalog entries loaded"
    )


@catalog_app.command("list")
def catalog_list(
    verification: Annotated[
        catalog.Level | None,
        typer.Option(help="Only entries known to work this far: verified, checked or described"),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Only this category, e.g. crm")] = None,
) -> None:
    """Every catalog entry by name: slug, name, how far it is known to work (verified: passes
    the conformance suite against a stand-in of the provider; checked: against the provider's
    own API description; described: written from documentation only; - not rated), whether it
    runs (has an endpoint) and what the level rests on, or why the entry has no definition."""

    async def work(conn: Any) -> list[dict[str, Any]]:
        return await catalog.entries(conn, verification=verification, category=category)

    for line in catalog.table(_run(work, transaction=False)):
        typer.echo(line)


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Option(help="URL-safe id, e.g. acme")],
    name: Annotated[str, typer.Option(help="Display name")],
    industry: Annotated[str | None, typer.Option(help="e.g. fintech, healthcare")] = None,
    size: Annotated[int | None, typer.Option(help="Number of employees", min=1)] = None,
) -> None:
    """Create a tenant."""

    async def work(conn: Any) -> dict[str, Any]:
        return await tenants.create(conn, slug=slug, name=name, industry=industry, size=size)

    tenant = _run(work)
    typer.echo(f"created tenant {tenant['slug']} ({tenant['id']})")


@tenant_app.command("list")
def tenant_list(
    status: Annotated[str | None, typer.Option(help="Only 'active' or 'suspended' tenants")] = None,
) -> None:
    """List every tenant with its status, members and installs."""
    if status not in (None, "active", "suspended"):
        typer.secho("error: --status is 'active' or 'suspended'", fg="red", err=True)
        raise typer.Exit(2)

    async def work(conn: Any) -> list[dict[str, Any]]:
        return await _every_page(
            lambda cursor: admin.list_tenants(conn, status=status, cursor=cursor, limit=200)
        )

    rows = _run(work, transaction=False)
    typer.echo(f"{'SLUG':24}  {'STATUS':9}  {'MEMBERS':>7}  {'INSTALLS':>8}  NAME")
    for t in rows:
        why = f"  ({t['suspended_reason']})" if t["suspended_reason"] else ""
        counts = f"{t['members']:>7}  {t['installs']:>8}"
        typer.echo(f"{t['slug']:24}  {t['status']:9}  {counts}  {t['name']}{why}")


@tenant_app.command("suspend")
def tenant_suspend(
    slug: Annotated[str, typer.Argument(help="The tenant's slug")],
    reason: Annotated[str, typer.Option(help="Why (kept with the tenant and audited)")],
) -> None:
    """Suspend a tenant: gateways refuse its requests within 5 s (403 tenant_suspended) and its
    scheduled syncs pause. Its data, members and sessions are kept."""

    async def work(conn: Any) -> tuple[dict[str, Any], bool]:
        return await admin.suspend(conn, slug, reason=reason, actor="system:cli")

    tenant, changed = _run(work)
    if changed:
        typer.echo(f"suspended tenant {slug}")
    else:
        typer.echo(f"tenant {slug} was suspended already, since {tenant['suspended_at']:%c %Z}")


@tenant_app.command("resume")
def tenant_resume(slug: Annotated[str, typer.Argument(help="The tenant's slug")]) -> None:
    """Lift a tenant's suspension: requests are served again within 5 s, syncs resume."""

    async def work(conn: Any) -> tuple[dict[str, Any], bool]:
        return await admin.resume(conn, slug, actor="system:cli")

    _tenant, changed = _run(work)
    typer.echo(f"resumed tenant {slug}" if changed else f"tenant {slug} was not suspended")


Email = Annotated[str | None, typer.Option(help="The user's verified email")]
Issuer = Annotated[str | None, typer.Option(help="The provider's issuer URL (with --subject)")]
Subject = Annotated[str | None, typer.Option(help="The user's subject at that issuer")]


def _one_way(given: object, issuer: str | None, subject: str | None, *, usage: str) -> None:
    """Exactly one way of naming a user: ``given`` (an email, an id), or issuer and subject."""
    by_identity = issuer is not None and subject is not None
    if (given is not None) == by_identity or (issuer is None) != (subject is None):
        typer.secho(f"error: give {usage}", fg="red", err=True)
        raise typer.Exit(2)


def _selected_user(email: str | None, issuer: str | None, subject: str | None) -> None:
    _one_way(email, issuer, subject, usage="--email, or --issuer and --subject")


@operator_app.command("add")
def operator_add(email: Email = None, issuer: Issuer = None, subject: Subject = None) -> None:
    """Make a user a platform operator (they must have signed in once). By verified email, or
    by --issuer and --subject when several users have the email."""
    _selected_user(email, issuer, subject)
    # by email, only the platform's providers count: a tenant's own SSO can assert any address
    platform = {n for n, p in _settings(GatewaySettings).oidc_providers.items() if not p.tenants}

    async def work(conn: Any) -> tuple[dict[str, Any], bool]:
        user = await admin.find_user(
            conn, email=email, issuer=issuer, subject=subject, vouching=platform
        )
        return user, await admin.add_operator(conn, user["user_id"], actor="system:cli")

    user, added = _run(work)
    # the identity, not only the email: a provider vouches for the emails it asserts, so the
    # operator sees which provider this person signed in with
    who = (f"{user['email'] or user['subject']} ({user['user_id']}; signed in at"
           f" {user.get('issuer', '?')} as {user.get('subject', '?')})")  # fmt: skip
    typer.echo(f"{who} is {'now' if added else 'already'} a platform operator")


@operator_app.command("remove")
def operator_remove(email: Email = None, issuer: Issuer = None, subject: Subject = None) -> None:
    """Take a user's operator role away (their sessions lose it within 5 s). One a provider's
    configured `operators` lists gets it back at their next sign-in: remove them there too."""
    _selected_user(email, issuer, subject)

    async def work(conn: Any) -> tuple[dict[str, Any], bool]:
        user = await admin.find_user(conn, email=email, issuer=issuer, subject=subject)
        return user, await admin.remove_operator(conn, user["user_id"], actor="system:cli")

    user, removed = _run(work)
    who = f"{user['email'] or user['subject']} ({user['user_id']})"
    typer.echo(f"{who} {'is no longer' if removed else 'was not'} a platform operator")


@operator_app.command("list")
def operator_list() -> None:
    """List platform operators: user, email, who added them, and their identities."""
    rows = _run(admin.list_operators, transaction=False)
    typer.echo(f"{'USER':36}  {'ADDED BY':20}  {'EMAIL':30}  IDENTITIES")
    for o in rows:
        identities = ", ".join(f"{i['issuer']} {i['subject']}" for i in o["identities"])
        typer.echo(f"{o['user_id']!s:36}  {o['added_by']:20}  {o['email'] or '-':30}  {identities}")


@users_app.command("show")
def users_show(email: Email = None, issuer: Issuer = None, subject: Subject = None) -> None:
    """Show users with their identities and memberships: every user with a verified email
    (two providers asserting one address are two users), or the user of one identity."""
    _selected_user(email, issuer, subject)

    async def work(conn: Any) -> list[dict[str, Any]]:
        return await users.profiles(conn, email=email, issuer=issuer, subject=subject)

    found = _run(work)
    for user in found:
        verified = "verified" if user["email_verified"] else "unverified"
        typer.echo(f"user {user['id']}  {user['email'] or '-'} ({verified})"
                   f"  operator: {'yes' if user['operator'] else 'no'}"
                   f"  created {_when(user['created_at'])}"
                   f"  last sign-in {_when(user['last_sign_in_at'])}")  # fmt: skip
        for i in user["identities"]:
            verified = "verified" if i["email_verified"] else "unverified"
            typer.echo(f"  identity  {i['issuer']}  {i['subject']}  (provider {i['provider']},"
                       f" {i['email'] or '-'} {verified}, last sign-in"
                       f" {_when(i['last_sign_in_at'])})")  # fmt: skip
        for m in user["memberships"]:
            suspended = " (suspended)" if m["suspended"] else ""
            typer.echo(f"  member    {m['slug']}  {m['role']}{suspended}")
    if len(found) > 1:
        typer.echo(f"{len(found)} users have this email. Only if every identity above is the same"
                   " person's: seedos users link --keep-issuer I --keep-subject S"
                   " --merge-issuer I2 --merge-subject S2")  # fmt: skip


def _link_side(
    side: str, user_id: uuid.UUID | None, issuer: str | None, subject: str | None
) -> None:
    _one_way(
        user_id, issuer, subject, usage=f"--{side} ID, or --{side}-issuer and --{side}-subject"
    )


async def _user_id(
    conn: Any, user_id: uuid.UUID | None, issuer: str | None, subject: str | None
) -> uuid.UUID:
    if user_id is not None:
        return user_id
    return (await admin.find_user(conn, issuer=issuer, subject=subject))["user_id"]


@users_app.command("link")
def users_link(
    keep: Annotated[uuid.UUID | None, typer.Option(help="The user who stays (id)")] = None,
    merge: Annotated[
        uuid.UUID | None, typer.Option(help="The user merged into it, then deleted (id)")
    ] = None,
    keep_issuer: Annotated[str | None, typer.Option(help="Issuer of an identity of --keep")] = None,
    keep_subject: Annotated[str | None, typer.Option(help="Its subject")] = None,
    merge_issuer: Annotated[
        str | None, typer.Option(help="Issuer of an identity of --merge")
    ] = None,
    merge_subject: Annotated[str | None, typer.Option(help="Its subject")] = None,
) -> None:
    """Make two users one person: the merged user's identities, memberships and API keys move
    to the kept one, its sessions end (gateways refuse them within 5 s) and it is deleted.
    Where both are members the kept user's role stays (reported). Check with `seedos users
    show` first: whoever controls either identity becomes the kept user."""
    _link_side("keep", keep, keep_issuer, keep_subject)
    _link_side("merge", merge, merge_issuer, merge_subject)

    async def work(conn: Any) -> dict[str, Any]:
        return await users.link(
            conn, keep=await _user_id(conn, keep, keep_issuer, keep_subject),
            merge=await _user_id(conn, merge, merge_issuer, merge_subject), actor="system:cli",
        )  # fmt: skip

    result = _run(work)
    kept, merged = result["keep"], result["merge"]
    typer.echo(f"linked {merged['id']} ({merged['email'] or '-'}) into {kept['id']}"
               f" ({kept['email'] or '-'}); {merged['id']} is deleted")  # fmt: skip
    for i in result["identities"]:
        typer.echo(f"identity moved: {i['issuer']}  {i['subject']}  (provider {i['provider']})")
    for m in result["memberships"]:
        if m["outcome"] == "moved":
            typer.echo(f"membership moved: {m['slug']}  {m['role']}")
        elif m["role"] == m["merge_role"]:
            typer.echo(f"membership kept: {m['slug']}  {m['role']} (both were {m['role']})")
    for c in result["conflicts"]:
        typer.secho(f"conflict: {c['slug']}: kept {c['role']}, dropped {c['merge_role']}"
                    f" (change it with seedos members set-role {kept['id']} --tenant {c['slug']}"
                    " --role R)", fg="yellow")  # fmt: skip
    typer.echo(f"sessions ended: {result['sessions_ended']}; API keys revoked:"
               f" {result['revoked_api_keys']}")  # fmt: skip
    if result["reattributed"]:
        named = ", ".join(f"{table} {n}" for table, n in result["reattributed"].items())
        typer.echo(f"now naming {kept['id']} as who did it: {named}")


async def _tenant_id(conn: Any, slug: str) -> uuid.UUID:
    """The id of the tenant with this slug (an unknown one is the usual error)."""
    return (await tenants.get_by_slug(conn, slug))["id"]


async def _every_page(
    list_page: Callable[[str | None], Awaitable[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Every item of a paginated listing, ``list_page(cursor)`` called until no cursor is left."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await list_page(cursor)
        items += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return items


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    role: Annotated[Role, typer.Option(help="What the key may do")] = Role.editor,
    name: Annotated[str, typer.Option(help="A label for the key")] = "cli",
) -> None:
    """Mint an API key. The key is printed once; only its hash is stored."""

    async def work(conn: Any) -> dict[str, Any]:
        return await api_keys.create(
            conn, tenant_id=await _tenant_id(conn, tenant), name=name, role=role,
            created_by="system:cli",
        )  # fmt: skip

    key = _run(work)
    typer.echo(f"id:   {key['id']}\nrole: {key['role']}\nkey:  {key['key']}")
    typer.secho("Store the key now: it cannot be shown again.", fg="yellow", err=True)


@apikey_app.command("list")
def apikey_list(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
) -> None:
    """List a tenant's API keys (never the keys themselves)."""

    async def work(conn: Any) -> list[dict[str, Any]]:
        tenant_id = await _tenant_id(conn, tenant)
        return await api_keys.list_keys(conn, tenant_id=tenant_id, include_revoked=all_keys)

    rows = _run(work)
    typer.echo(f"{'ID':36}  {'PREFIX':17}  {'ROLE':9}  {'STATUS':7}  NAME")
    for k in rows:
        state = "revoked" if k["revoked_at"] else "active"
        typer.echo(f"{k['id']!s:36}  {k['prefix']:17}  {k['role']:9}  {state:7}  {k['name']}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id")]) -> None:
    """Revoke a key. Gateways stop accepting it within their cache time (at most 5 s)."""

    async def work(conn: Any) -> dict[str, Any]:
        return await api_keys.revoke_with_descendants(
            conn, key_id, tenant_id=None, actor="system:cli"
        )

    _run(work)
    typer.echo(f"revoked {key_id}")


Tenant = Annotated[str, typer.Option(help="Tenant slug")]


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


@members_app.command("list")
def members_list(tenant: Tenant) -> None:
    """List a tenant's members: user id, role, email, when they joined and last signed in."""

    async def work(conn: Any) -> list[dict[str, Any]]:
        tenant_id = await _tenant_id(conn, tenant)
        return await _every_page(
            lambda cursor: members.list_members(conn, tenant_id=tenant_id, cursor=cursor, limit=200)
        )

    rows = _run(work)
    typer.echo(f"{'USER':36}  {'ROLE':9}  {'JOINED':16}  {'LAST SIGN-IN':16}  EMAIL")
    for m in rows:
        email = (m["email"] or "-") + ("" if m["email_verified"] else " (unverified)")
        typer.echo(f"{m['user_id']!s:36}  {m['role']:9}  {_when(m['joined_at']):16}  "
                   f"{_when(m['last_sign_in_at']):16}  {email}")  # fmt: skip


@members_app.command("set-role")
def members_set_role(
    user_id: Annotated[uuid.UUID, typer.Argument(help="The member's user id")],
    tenant: Tenant,
    role: Annotated[Role, typer.Option(help="The new role")],
) -> None:
    """Change a member's role; their sessions take it on their next request. The tenant's last
    admin stays one."""

    async def work(conn: Any) -> dict[str, Any]:
        tenant_id = await _tenant_id(conn, tenant)
        return await members.change_role(
            conn, tenant_id=tenant_id, user_id=user_id, role=role, actor="system:cli",
            granter_role=None,
        )  # fmt: skip

    member = _run(work)
    typer.echo(f"{user_id} is {member['role']} in {tenant}")


@members_app.command("remove")
def members_remove(
    user_id: Annotated[uuid.UUID, typer.Argument(help="The member's user id")], tenant: Tenant
) -> None:
    """Remove a member and end their sessions in the tenant (gateways refuse them within 5 s).
    The tenant's last admin stays."""

    async def work(conn: Any) -> dict[str, Any]:
        tenant_id = await _tenant_id(conn, tenant)
        return await members.remove(
            conn, tenant_id=tenant_id, user_id=user_id, actor="system:cli", actor_role=None
        )

    _run(work)
    typer.echo(f"removed {user_id} from {tenant}")


@invitations_app.command("create")
def invitations_create(
    tenant: Tenant,
    email: Annotated[str, typer.Option(help="The address to invite")],
    role: Annotated[Role, typer.Option(help="The role on acceptance")] = Role.viewer,
) -> None:
    """Invite an email address. The link is printed once (and emailed when SEEDOS_GATEWAY_SMTP
    is set); it works once, for SEEDOS_GATEWAY_INVITATION_DAYS days."""
    settings = _settings(GatewaySettings)

    async def work(conn: Any) -> invitations.Created:
        tenant_id = await _tenant_id(conn, tenant)
        return await invitations.create(
            conn, tenant_id=tenant_id, email=email, role=role, invited_by="system:cli",
            inviter_role=None, valid_days=settings.invitation_days,
            public_url=settings.public_url,
        )  # fmt: skip

    created = _run(work)
    invitation = created.invitation
    emailed = asyncio.run(mailer.send_created(settings.smtp, created))
    typer.echo(f"id:      {invitation['id']}\nemail:   {invitation['email']}\n"
               f"role:    {invitation['role']}\nexpires: {_when(invitation['expires_at'])} UTC\n"
               f"link:    {created.link}\nemailed: {'yes' if emailed else 'no'}")  # fmt: skip
    typer.secho("The link is shown only now.", fg="yellow", err=True)


@invitations_app.command("list")
def invitations_list(
    tenant: Tenant,
    status: Annotated[
        str | None, typer.Option(help="Only pending, accepted, revoked or expired ones")
    ] = None,
) -> None:
    """List a tenant's invitations, newest first (never their links)."""
    if status not in (None, *invitations.STATUSES):
        typer.secho(f"error: --status is one of {', '.join(invitations.STATUSES)}",
                    fg="red", err=True)  # fmt: skip
        raise typer.Exit(2)

    async def work(conn: Any) -> list[dict[str, Any]]:
        tenant_id = await _tenant_id(conn, tenant)
        return await _every_page(
            lambda cursor: invitations.list_invitations(
                conn, tenant_id=tenant_id, status=status, cursor=cursor, limit=200
            )
        )

    rows = _run(work)
    typer.echo(f"{'ID':36}  {'STATUS':8}  {'ROLE':9}  {'EXPIRES':16}  EMAIL")
    for i in rows:
        typer.echo(f"{i['id']!s:36}  {i['status']:8}  {i['role']:9}  "
                   f"{_when(i['expires_at']):16}  {i['email']}")  # fmt: skip


@invitations_app.command("revoke")
def invitations_revoke(
    invitation_id: Annotated[uuid.UUID, typer.Argument(help="The invitation's id")],
    tenant: Tenant,
) -> None:
    """Revoke an invitation: its link stops working."""

    async def work(conn: Any) -> dict[str, Any]:
        tenant_id = await _tenant_id(conn, tenant)
        return await invitations.revoke(
            conn, invitation_id, tenant_id=tenant_id, actor="system:cli"
        )

    _run(work)
    typer.echo(f"revoked {invitation_id}")


@domains_app.command("list")
def domains_list(tenant: Tenant) -> None:
    """List the email domains whose verified users join the tenant as viewers."""

    async def work(conn: Any) -> list[dict[str, Any]]:
        tenant_id = await _tenant_id(conn, tenant)
        return await domains.list_domains(conn, tenant_id=tenant_id)

    rows = _run(work)
    typer.echo(f"{'DOMAIN':40}  {'ROLE':9}  {'ADDED':16}  ADDED BY")
    for d in rows:
        typer.echo(f"{d['domain']:40}  {d['role']:9}  {_when(d['created_at']):16}  "
                   f"{d['created_by']}")  # fmt: skip


@domains_app.command("add")
def domains_add(
    domain: Annotated[str, typer.Argument(help="An email domain, e.g. example.com")],
    tenant: Tenant,
) -> None:
    """Register an email domain: people signing in with a verified address of it join the
    tenant as viewers. No DNS proof is asked; public webmail domains are refused."""

    async def work(conn: Any) -> dict[str, Any]:
        tenant_id = await _tenant_id(conn, tenant)
        return await domains.add(conn, tenant_id=tenant_id, domain=domain, actor="system:cli")

    added = _run(work)
    typer.echo(f"added {added['domain']} to {tenant} (members join as {added['role']})")


@domains_app.command("remove")
def domains_remove(
    domain: Annotated[str, typer.Argument(help="The email domain")], tenant: Tenant
) -> None:
    """Unregister an email domain; who joined through it stays a member."""

    async def work(conn: Any) -> dict[str, Any]:
        tenant_id = await _tenant_id(conn, tenant)
        return await domains.remove(conn, tenant_id=tenant_id, domain=domain, actor="system:cli")

    removed = _run(work)
    typer.echo(f"removed {removed['domain']} from {tenant}")


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's chain (slug)")] = None,
) -> None:
    """Recompute the audit trail's hash chains and report the first broken link of each.

    Exits 0 when every chain is intact, 1 when one is broken, 2 for an unknown tenant."""

    async def work(conn: Any) -> tuple[audit.Verification, dict[Any, str]] | None:
        tenant_id = None
        if tenant is not None:
            try:
                tenant_id = await _tenant_id(conn, tenant)
            except tenants.TenantNotFound:
                return None
        result = await audit.verify(conn, tenant_id)
        names = {b.tenant_id: await _chain_name(conn, b.tenant_id) for b in result.breaks}
        return result, names

    outcome = _run(work, transaction=False)  # verify reads from one snapshot of its own
    if outcome is None:
        typer.secho(f"error: no tenant with slug '{tenant}'", fg="red", err=True)
        raise typer.Exit(2)
    result, names = outcome
    if result.ok:
        typer.echo(f"ok: {result.entries} entries in {result.chains} chains")
        return
    for broken in result.breaks:
        typer.echo(f"{names[broken.tenant_id]}: seq {broken.seq}: {broken.reason}")
    typer.secho(
        f"broken: {len(result.breaks)} of {result.chains} chains ({result.entries} entries)",
        fg="red", err=True,
    )  # fmt: skip
    raise typer.Exit(1)


async def _chain_name(conn: Any, tenant_id: uuid.UUID | None) -> str:
    if tenant_id is None:
        return "system"
    try:
        return f"tenant {(await tenants.get(conn, tenant_id))['slug']}"
    except tenants.TenantNotFound:
        return f"tenant {tenant_id} (deleted)"


@keys_app.command("generate")
def keys_generate(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file (never over one)")
    ] = None,
    ring: Annotated[
        bool, typer.Option("--ring", help="only a credential key ring (JSON), as before")
    ] = False,
) -> None:
    """Print every secret a fresh deployment needs, as a .env file for docker compose:
    passwords, each signing service's internal signing key, the public keys, the idempotency
    key and the credential key ring."""
    if ring:
        text = KeyRing.generate().to_json() + "\n"
    else:
        text = deployment_keys.dotenv_text(deployment_keys.fresh_deployment())
    if output is None:
        typer.echo(text, nl=False)
        return
    try:  # never over an existing file (it holds live secrets), and never readable by others
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        typer.secho(f"error: {output} exists; keys are never written over", fg="red", err=True)
        raise typer.Exit(1) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    typer.echo(f"wrote {output} (mode 0600)")


_ENV_FILE = typer.Option("--env-file", help="the deployment's .env file")
_SIGNING_SERVICE = typer.Argument(help="gateway or marketplace_service")


def _key_step(step: Callable[[], T]) -> T:
    try:
        return step()
    except (deployment_keys.KeyFileError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _signing_service(service: str) -> str:
    if service not in service_keys.SIGNING_SERVICES:
        typer.secho(f"error: {service} signs nothing: name one of "
                    f"{', '.join(service_keys.SIGNING_SERVICES)}", fg="red", err=True)  # fmt: skip
        raise typer.Exit(2)
    return service


@keys_app.command("add-signing-key")
def keys_add_signing_key(
    service: Annotated[str, _SIGNING_SERVICE], env_file: Annotated[Path, _ENV_FILE] = Path(".env")
) -> None:
    """Rotation, step 1: publish a new internal signing key for SERVICE (it waits in
    <setting>_NEXT); then restart every service."""
    kid = _key_step(lambda: deployment_keys.add_signing_key(env_file, _signing_service(service)))
    typer.echo(f"published {kid}; restart the services, then run promote-signing-key {service}")


@keys_app.command("promote-signing-key")
def keys_promote_signing_key(
    service: Annotated[str, _SIGNING_SERVICE], env_file: Annotated[Path, _ENV_FILE] = Path(".env")
) -> None:
    """Rotation, step 2: SERVICE signs with the key step 1 published; then restart it."""
    old, new = _key_step(
        lambda: deployment_keys.promote_signing_key(env_file, _signing_service(service))
    )
    typer.echo(
        f"{service} signs with {new}; restart it, and once its tokens have expired"
        f" (SEEDOS_INTERNAL_TOKEN_MAX_LIFETIME_SECONDS) run retire-signing-key {old}"
    )


@keys_app.command("retire-signing-key")
def keys_retire_signing_key(
    kid: Annotated[str, typer.Argument(help="the key id to retire")],
    env_file: Annotated[Path, _ENV_FILE] = Path(".env"),
) -> None:
    """Rotation, step 3: KID is no longer accepted; then restart every service."""
    _key_step(lambda: deployment_keys.retire_signing_key(env_file, kid))
    typer.echo(f"retired {kid}; restart the services")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new primary key-encryption key and re-wrap every stored credential's data key.

    The new ring is saved first (old keys kept), so credentials decrypt throughout; an
    interrupted rotation is finished by running it again."""
    try:
        settings = ConnectorServiceSettings()
    except ValueError as exc:
        typer.secho(f"configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    source = settings.key_source()
    ring = source.ring.rotated()
    try:
        source.save(ring, settings.data_dir)
    except credential_keys.KeySourceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None

    async def work(conn: Any) -> int:
        return await credentials.rewrap_all(conn, ring)

    try:
        count = _run(work, transaction=False)  # a transaction per batch
    except DecryptionError as exc:
        typer.secho(
            f"error: {exc}; the credentials re-wrapped before it keep the new key", fg="red",
            err=True,
        )  # fmt: skip
        raise typer.Exit(1) from None
    typer.echo(f"new primary key {ring.primary}; re-wrapped {count} credential(s)")


@app.command("up")
def up(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    gateway_port: Annotated[int, typer.Option(help="Gateway port")] = 8000,
    connector_port: Annotated[int, typer.Option(help="connector_service port")] = 8001,
    marketplace_port: Annotated[int, typer.Option(help="marketplace_service port")] = 8002,
    crm_port: Annotated[int, typer.Option(help="The demo CRM's port")] = 8011,
    crm_connector_port: Annotated[int, typer.Option(help="The example connector's port")] = 8010,
    generic_connector_port: Annotated[
        int, typer.Option(help="The generic connector's port (the example definitions)")
    ] = 8013,
    examples: Annotated[
        bool,
        typer.Option(
            help="Also run the demo CRM, the example connector and the generic"
            " connector with the example definitions"
        ),
    ] = True,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve the gateway over HTTPS (TLS 1.3 only) with a certificate for localhost"
            " from a local CA made in the data folder (tls/ca.pem is the one to trust)",
        ),
    ] = False,
) -> None:
    """Start the whole suite: database, migrations, demo data and the three services.

    Without DATABASE_URL an embedded PostgreSQL runs with its data in the data folder
    (.seedos/ by default). Ctrl-C stops everything.
    """
    ports = {"gateway": gateway_port, "connector_service": connector_port,
             "marketplace_service": marketplace_port, "demo_crm": crm_port,
             "crm_connector": crm_connector_port,
             "generic_connector": generic_connector_port}  # fmt: skip
    try:
        run_suite(_settings(CommonSettings), host=host, ports=ports, examples=examples, tls=tls)
    except SuiteError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
