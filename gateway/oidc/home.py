"""``/``: until the dashboard arrives, who is signed in and a sign-out button; the sign-in
page for everyone else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from common.errors import SeedosError
from gateway.oidc import pages
from gateway.sessions import cookies, tokens
from gateway.sessions import repository as sessions
from gateway.users import service as users


async def page(request: Request) -> Response:
    secret = cookies.read(request.scope, cookies.SESSION)
    if secret is None:
        return RedirectResponse("/auth/sign-in", status_code=303)
    try:
        principal = await request.app.state.authenticator.authenticate(
            request, allow_suspended=True
        )
    except SeedosError:
        return RedirectResponse("/auth/sign-in", status_code=303)
    if principal.user_id is None:
        return RedirectResponse("/auth/sign-in", status_code=303)
    async with request.app.state.db.connection() as conn:
        user = await users.get(conn, principal.user_id)
        session = await sessions.get(conn, principal.session_id)
    ends = min(session["idle_expires_at"], session["absolute_expires_at"]) if session else None
    secret = cookies.session_value(request.scope) or secret  # rotated by this request?
    html = pages.home(
        name=user["display_name"] or user["email"] or principal.subject,
        tenant=principal.tenant_slug,
        role=principal.role if principal.has_tenant else None,
        ends_at=ends.isoformat(timespec="seconds") if ends else "?",
        csrf=tokens.derive(secret, "csrf"),
        notice=request.query_params.get("notice"),
    )
    return HTMLResponse(html, headers={"cache-control": "no-store"})
