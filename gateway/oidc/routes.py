"""``/auth/*``: where people sign in and out. Served without a credential (the guard treats
these paths as public, each with a small body limit); each route checks what it needs.

Transactions are explicit here: a sign-in's flow is recorded and committed before the browser
goes to the provider, the callback uses the flow up in its own transaction (committed whatever
follows, so it cannot be replayed), no connection is held while the provider is called, and the
session is created in a transaction of its own."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from common.errors import PROBLEM_RESPONSES, Forbidden, SeedosError
from gateway.auth import failures
from gateway.auth.csrf import CsrfRefused, cross_site
from gateway.dashboard.pages import render
from gateway.deps import Authenticated, Settings
from gateway.invitations import service as invitations
from gateway.oidc import service
from gateway.oidc.provider import SignInFailed
from gateway.sessions import cookies, tokens
from gateway.sessions import service as sessions
from gateway.settings import is_loopback

router = APIRouter(prefix="/auth", tags=["sign-in"], responses=PROBLEM_RESPONSES)
# The most body each /auth path reads (gateway.guard): the two forms, a few fields each.
FORM_LIMIT = 4096
BODY_LIMITS = {"/auth/logout": FORM_LIMIT, "/auth/dev-login": FORM_LIMIT, "/auth/login": 0,
               "/auth/callback": 0, "/auth/sign-in": 0, "/auth/signed-out": 0}  # fmt: skip
DEMO_TENANT = "demo"

Slug = Annotated[str | None, Query(max_length=63, pattern=r"^[a-z0-9-]+$")]
Path = Annotated[str | None, Query(max_length=2000, description="A path on this site")]


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _redirect(url: str, *, cookies_out: list[tuple[bytes, bytes]] = ()) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.raw_headers.extend(cookies_out)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, settings: Settings, return_to: Path = None) -> Response:
    """The sign-in page: the platform's providers, single sign-on by work email, and in
    development mode "Continue as the demo admin"."""
    return_to = service.check_return_to(return_to)
    providers = request.app.state.providers
    shown = [(p.name, p.display_name) for p in providers.platform]
    extra = {"return_to": return_to} if return_to else {}
    return render(
        request, "sign_in.html", title="Sign in", providers=shown, return_to=return_to,
        dev_sign_in=bool(settings.dev_sign_in),
        provider_query=lambda name: urlencode({"provider": name, **extra}),
    )  # fmt: skip


@router.get("/login", status_code=303)
async def login(
    request: Request,
    settings: Settings,
    tenant: Slug = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    provider: Annotated[str | None, Query(max_length=40)] = None,
    return_to: Path = None,
    invitation: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Start signing in (303 to the provider): authorization code with PKCE S256, `state`
    and `nonce` bound to this browser by a short-lived `__Host-seedos_login` cookie. The
    provider is `provider` if named, else the SSO of `tenant` or of the tenant that registered
    `email`'s domain, else the platform's. `return_to` (a path on this site) is where the
    browser goes once signed in."""
    request.app.state.auth_limiter.check(_client(request), what="sign-in")
    return_to = service.check_return_to(return_to)
    providers: service.Providers = request.app.state.providers
    db = request.app.state.db
    if not providers.by_name and settings.dev_sign_in:
        return _redirect("/auth/sign-in" + (f"?return_to={return_to}" if return_to else ""))
    if invitation is not None and not tokens.plausible(invitation):
        raise invitations.InvitationInvalid("the invitation link is not valid")
    async with db.connection() as conn, conn.transaction():
        by_domain = await service.domain_tenant(conn, email)
        chosen = providers.choose(name=provider, tenant=tenant, domain=by_domain)
        flow = await service.begin(
            # the domain chooses the provider only: never the tenant a session starts in
            conn, provider=chosen.name, tenant_slug=tenant, return_to=return_to,
            invitation=invitation, ttl_seconds=settings.login_flow_minutes * 60,
        )  # fmt: skip
    url = await chosen.authorization_url(
        state=flow.state, nonce=flow.nonce, code_verifier=flow.verifier, login_hint=email
    )
    max_age = int(settings.login_flow_minutes * 60)
    return _redirect(url, cookies_out=[cookies.header(cookies.LOGIN, flow.secret, max_age=max_age)])


@router.get("/callback", status_code=303)
async def callback(
    request: Request,
    settings: Settings,
    auth: Authenticated,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where the provider sends the browser back. Checks the browser's sign-in (state, single
    use, expiry), exchanges the code, checks the ID token (signature against the provider's
    keys, issuer, audience, expiry, nonce), then starts a session with a new id and redirects
    to the sign-in's `return_to` (or `/`)."""
    request.app.state.auth_limiter.check(_client(request), what="sign-in")
    started = time.perf_counter()
    db = request.app.state.db
    secret = cookies.read(request.scope, cookies.LOGIN)
    clear_login = cookies.header(cookies.LOGIN, "", max_age=0)
    try:
        async with db.connection() as conn, conn.transaction():
            flow = await service.consume(conn, secret, state)
        if error:
            raise SignInFailed("the provider did not sign you in: try again",
                               code="access_denied")  # fmt: skip
        if not code:
            raise SignInFailed("the provider sent neither a code nor an error")
        assert secret is not None
        provider = request.app.state.providers.choose(name=flow["provider"])
        started_flow = service.Flow(secret)
        asked = time.perf_counter()
        claims = await provider.exchange(
            code=code, code_verifier=started_flow.verifier, nonce=started_flow.nonce
        )
        at_provider = time.perf_counter() - asked
        async with db.connection() as conn, conn.transaction():
            signed_in = await service.complete(
                conn, claims, provider=provider, flow=flow,
                invitation_hash=flow["invitation_hash"],
                settings=settings, timeouts=auth.timeouts,
                replacing=cookies.read(request.scope, cookies.SESSION),
                user_agent=request.headers.get("user-agent"), client_address=_client(request),
                request_id=request.scope["state"].get("request_id"),
            )  # fmt: skip
    except SeedosError as exc:
        failures.record("oidc", exc.code if exc.code in _REASONS else "sign_in_failed")
        exc.headers = {**(exc.headers or {}), "set-cookie": clear_login[1].decode("latin-1")}
        raise
    auth.forget()  # a session the browser held was ended
    session_cookie = cookies.header(
        cookies.SESSION, signed_in.issued.secret, max_age=int(settings.session_absolute_seconds)
    )
    target = signed_in.return_to or "/"
    if signed_in.notice:  # shown by the page it lands on (an invitation that was not accepted)
        target += ("&" if "?" in target else "?") + f"notice={signed_in.notice}"
    response = _redirect(target, cookies_out=[clear_login, session_cookie])
    # what the sign-in cost here and at the provider (the code exchange, its keys when new)
    total = time.perf_counter() - started
    response.headers["server-timing"] = (
        f"provider;dur={at_provider * 1000:.1f}, total;dur={total * 1000:.1f}"
    )
    return response


_REASONS = frozenset({"login_flow_missing", "login_flow_invalid", "login_expired",
                      "state_mismatch", "access_denied", "code_refused", "id_token_invalid",
                      "id_token_missing", "invitation_invalid", "invitation_email_mismatch",
                      "already_member"})  # fmt: skip


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, max_num_fields=10).items()}


def _same_origin(request: Request, settings) -> None:
    """A form post that signs in or out must come from this site (login CSRF)."""
    if cross_site(request.headers, settings.public_origin):
        failures.record("session", "csrf_cross_site")
        raise CsrfRefused("this form must be sent from this site")


@router.post("/dev-login", status_code=303)
async def dev_login(request: Request, settings: Settings, auth: Authenticated) -> Response:
    """Development mode only: sign in as the demo tenant's admin without a provider (404
    otherwise). Form field `return_to` optional."""
    if not settings.dev_sign_in or not is_loopback(_client(request) or ""):
        # a laptop's: from the machine itself only, whatever the settings
        raise SeedosError("development sign-in is off", status=404, code="not_found")
    request.app.state.auth_limiter.check(_client(request), what="sign-in")
    _same_origin(request, settings)
    return_to = service.check_return_to((await _form(request)).get("return_to"))
    async with request.app.state.db.connection() as conn, conn.transaction():
        signed_in = await service.dev_sign_in(
            conn, tenant_slug=DEMO_TENANT, timeouts=auth.timeouts,
            replacing=cookies.read(request.scope, cookies.SESSION),
            user_agent=request.headers.get("user-agent"), client_address=_client(request),
            request_id=request.scope["state"].get("request_id"),
        )  # fmt: skip
    auth.forget()
    session_cookie = cookies.header(
        cookies.SESSION, signed_in.issued.secret, max_age=int(settings.session_absolute_seconds)
    )
    return _redirect(return_to or "/", cookies_out=[session_cookie])


@router.post("/logout", status_code=303)
async def logout(request: Request, settings: Settings, auth: Authenticated) -> Response:
    """End this browser's session server-side and clear its cookie, then go to the
    provider's RP-initiated logout where it offers one (else `/auth/signed-out`). A script
    sends `X-CSRF-Token` and `Accept: application/json` and gets `{"logout_url"}`; a form
    sends the token as the field `csrf_token`."""
    secret = cookies.read(request.scope, cookies.SESSION)
    wants_json = "application/json" in request.headers.get("accept", "")
    # Cleared only when the browser sent it: a form another site posts here goes without the
    # cookie (SameSite=Lax), and must not sign the browser out by clearing it.
    clear = [cookies.header(cookies.SESSION, "", max_age=0)] if secret is not None else []
    next_url = "/auth/signed-out"
    if secret is not None:
        _same_origin(request, settings)
        given = request.headers.get("x-csrf-token") or (await _form(request)).get("csrf_token")
        if not tokens.same(given, tokens.derive(secret, "csrf")):
            failures.record("session", "csrf_token")
            raise Forbidden("send the session's CSRF token", code="csrf_refused")
        async with request.app.state.db.connection() as conn, conn.transaction():
            ended = await sessions.end(
                conn, reason="logout", actor="self", secret=secret,
                request_id=request.scope["state"].get("request_id"),
            )  # fmt: skip
        auth.forget()
        provider = request.app.state.providers.by_name.get(ended[0]["provider"]) if ended else None
        if provider is not None:
            post_logout = settings.public_url + "/auth/signed-out"
            next_url = await provider.logout_url(post_logout_redirect_uri=post_logout) or next_url
    if wants_json:
        response: Response = JSONResponse({"logout_url": next_url})
        response.raw_headers.extend(clear)
        response.headers["cache-control"] = "no-store"
        return response
    return _redirect(next_url, cookies_out=clear)


@router.get("/signed-out", response_class=HTMLResponse)
async def signed_out(request: Request) -> Response:
    """Where the browser lands after signing out."""
    return render(request, "signed_out.html", title="Signed out")


@router.get("/invitations/{token}", status_code=303)
async def invitation_link(request: Request, token: str) -> Response:
    """An invitation's link: sign in (with the invited, verified email) to accept it."""
    request.app.state.auth_limiter.check(_client(request), what="invitation")
    if not tokens.plausible(token):
        raise invitations.InvitationInvalid("the invitation link is not valid")
    return _redirect(f"/auth/login?invitation={token}")
