"""The dashboard's pages: server-rendered shells (Jinja2) that small ES modules fill from the
public REST API, the same calls any other client makes. A page needs a signed-in person:
without a session (or with an ended one) the browser goes to the sign-in page and comes back
to the page it asked for.

What the server puts in a page is who is looking: their name, tenant, role, other tenants (the
switcher), when the session ends (stated, and warned of before it does) and the CSRF token the
modules send with every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from common.errors import SeedosError
from common.roles import Permission, allows
from gateway.browser import policy
from gateway.dashboard.assets import Assets
from gateway.oidc.service import Providers
from gateway.sessions import cookies, tokens
from gateway.sessions import repository as sessions
from gateway.users import service as users

router = APIRouter(include_in_schema=False)
TEMPLATES = Environment(
    loader=PackageLoader("gateway.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
NAV = (  # (path, label, permission needed to see it)
    ("/", "Integrations", Permission.read),
    ("/marketplace", "Marketplace", Permission.read),
    ("/alerts", "Alerts", Permission.read),
    ("/webhooks", "Webhooks", Permission.read),
    ("/audit", "Audit log", Permission.manage),
    ("/settings", "Settings", Permission.read),
)


NOTICES = {  # what a page says when sign-in sends the browser to it with ?notice=
    "invitation_email_mismatch": "The invitation was not accepted: it is for another email"
    " address, or your provider has not verified yours. Sign in with the invited address.",
    "invitation_invalid": "The invitation was not accepted: it is unknown, used, revoked or"
    " expired. Ask for a new one.",
    "already_member": "You are a member of the tenant you were invited to already.",
}


@dataclass
class Viewer:
    user_id: str  # with the tenant's id, whose this browser's offline work is (the queue, edits)
    name: str
    email: str | None
    tenant: dict[str, Any] | None
    role: str | None
    memberships: list[dict[str, Any]]
    session_ends: str  # ISO 8601, the earlier of idle and absolute expiry
    idle_seconds: int
    absolute_ends: str
    csrf: str

    def can(self, permission: str) -> bool:
        return self.role is not None and allows(self.role, Permission(permission))


def assets(request: Request) -> Assets:
    return request.app.state.assets


def _modules_policy(request: Request, files: Assets) -> str:
    """The gateway's Content-Security-Policy with one more script allowed: the import map."""
    form_action = Providers.issuer_origins(request.app.state.settings)
    return policy(form_action, extra_script=" " + files.import_map_hash).decode()


async def viewer(request: Request) -> Viewer | None:
    """The signed-in person looking at the page, or None (no session, or it ended)."""
    if cookies.read(request.scope, cookies.SESSION) is None:
        return None
    try:
        principal = await request.app.state.authenticator.authenticate(
            request, allow_suspended=True
        )
    except SeedosError:
        return None
    if principal.user_id is None:
        return None
    async with request.app.state.db.connection() as conn:
        user = await users.get(conn, principal.user_id)
        memberships = await users.memberships(conn, principal.user_id)
        session = await sessions.get(conn, principal.session_id)
    if session is None:
        return None
    secret = cookies.session_value(request.scope) or cookies.read(request.scope, cookies.SESSION)
    role = principal.role if principal.has_tenant else None
    tenant = next((m for m in memberships if m["tenant_id"] == principal.tenant_id), None)
    settings = request.app.state.settings
    return Viewer(
        user_id=str(principal.user_id),
        name=user["display_name"] or user["email"] or principal.subject,
        email=user["email"],
        tenant=tenant,
        role=role,
        memberships=memberships,
        session_ends=min(session["idle_expires_at"], session["absolute_expires_at"]).isoformat(),
        absolute_ends=session["absolute_expires_at"].isoformat(),
        idle_seconds=int(settings.session_idle_seconds),
        csrf=tokens.derive(secret, "csrf"),
    )


def _sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = "" if target == "/" else "?return_to=" + quote(target, safe="/")
    return RedirectResponse(
        "/auth/sign-in" + back,
        status_code=303,
        headers={"cache-control": "no-store"},
    )


def render(request: Request, template: str, **context: Any) -> Response:
    """A template with what every page has: the assets' URLs, the navigation, the import map
    when the page loads browser packages (``modules=True``)."""
    files = assets(request)
    import_map = files.import_map_json if context.get("modules") else None
    me: Viewer | None = context.get("me")
    nav = [(p, label) for p, label, need in NAV if me is not None and me.can(need)]
    html = TEMPLATES.get_template(template).render(
        asset=files.url, import_map=import_map, nav=nav, path=request.url.path,
        vendored=files.vendored, **context,
    )  # fmt: skip
    headers = {"cache-control": "no-store"}
    if import_map is not None:
        headers["content-security-policy"] = _modules_policy(request, files)
    return HTMLResponse(html, headers=headers)


async def _page(request: Request, template: str, *, title: str, **context: Any) -> Response:
    me = await viewer(request)
    if me is None:
        return _sign_in(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    if me.tenant is None:
        return render(request, "no_tenant.html", me=me, title="No tenant yet", notice_text=notice)
    return render(request, template, me=me, title=title, notice_text=notice, **context)


@router.get("/")
async def overview(request: Request) -> Response:
    return await _page(request, "overview.html", title="Integrations")


@router.get("/integrations/{integration_id}")
async def integration(request: Request, integration_id: str) -> Response:
    return await _page(
        request, "integration.html", title="Integration", integration_id=integration_id
    )


@router.get("/integrations/{integration_id}/records")
async def records(request: Request, integration_id: str) -> Response:
    return await _page(
        request, "records.html", title="Records", integration_id=integration_id, modules=True
    )


@router.get("/marketplace")
async def marketplace(request: Request) -> Response:
    return await _page(request, "marketplace.html", title="Marketplace")


@router.get("/marketplace/{slug}")
async def connector(request: Request, slug: str) -> Response:
    return await _page(request, "connector.html", title="Connector", slug=slug)


@router.get("/alerts")
async def alerts(request: Request) -> Response:
    return await _page(request, "alerts.html", title="Alerts")


@router.get("/webhooks")
async def webhooks(request: Request) -> Response:
    return await _page(request, "webhooks.html", title="Webhooks")


@router.get("/webhooks/{endpoint_id}")
async def webhook(request: Request, endpoint_id: str) -> Response:
    return await _page(
        request, "webhook.html", title="Endpoint deliveries", endpoint_id=endpoint_id
    )


@router.get("/audit")
async def audit(request: Request) -> Response:
    return await _page(request, "audit.html", title="Audit log")


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    return await _page(request, "settings.html", title="Settings")


@router.get("/assets/vendor/{package}/{path:path}")
async def vendored(request: Request, package: str, path: str) -> Response:
    return assets(request).response(
        request, assets(request).vendored_file(package, path), immutable=True
    )


@router.get("/assets/{version}/{path:path}")
async def own(request: Request, version: str, path: str) -> Response:
    found, immutable = assets(request).own(version, path)
    return assets(request).response(request, found, immutable=immutable)
