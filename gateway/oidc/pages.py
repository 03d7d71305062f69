"""The few pages sign-in needs before the dashboard exists: plain HTML, no script and no
inline style (the CSP allows neither), every value escaped."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · SEED-OS</title></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"""


def page(title: str, body: str) -> str:
    return _PAGE.format(title=escape(title), body=body)


def sign_in(
    *,
    providers: list[tuple[str, str]],
    dev_sign_in: bool,
    return_to: str | None,
) -> str:
    """``providers``: (name, display name) pairs."""
    parts = []
    extra = {"return_to": return_to} if return_to else {}
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in extra.items()
    )
    if providers:
        items = "".join(
            f'<li><a href="/auth/login?{escape(urlencode({"provider": name, **extra}))}">'
            f"Continue with {escape(label)}</a></li>"
            for name, label in providers
        )
        parts.append(f"<ul>{items}</ul>")
        parts.append(
            '<form method="get" action="/auth/login"><p><label for="email">Work email (your'
            ' organisation\'s single sign-on)</label> <input id="email" name="email"'
            ' type="email" autocomplete="email" required>'
            + hidden
            + ' <button type="submit">Continue</button></p></form>'
        )
    if dev_sign_in:
        parts.append(
            '<form method="post" action="/auth/dev-login"><p>'
            + hidden
            + '<button type="submit">Continue as the demo admin</button> (development mode,'
            " no provider)</p></form>"
        )
    if not providers and not dev_sign_in:
        parts.append("<p>No identity provider is configured: see SEEDOS_GATEWAY_OIDC_PROVIDERS"
                     " in the README.</p>")  # fmt: skip
    return page("Sign in", "\n".join(parts))


NOTICES = {
    "invitation_email_mismatch": "The invitation was not accepted: it is for another email"
    " address, or your provider has not verified yours. Sign in with the invited address.",
    "invitation_invalid": "The invitation was not accepted: it is unknown, used, revoked or"
    " expired. Ask for a new one.",
    "already_member": "You are a member of the tenant you were invited to already.",
}


def home(
    *,
    name: str,
    tenant: str | None,
    role: str | None,
    ends_at: str,
    csrf: str,
    notice: str | None = None,
) -> str:
    where = (f"in <strong>{escape(tenant)}</strong> as {escape(role or '')}" if tenant
             else "in no tenant yet")  # fmt: skip
    shown = f'<p role="status">{escape(NOTICES[notice])}</p>' if notice in NOTICES else ""
    return page(
        "SEED-OS",
        f"{shown}<p>Signed in as <strong>{escape(name)}</strong> {where}. This session ends at"
        f" {escape(ends_at)} unless it is idle before.</p>"
        '<p><a href="/docs">API documentation</a></p>'
        '<form method="post" action="/auth/logout">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<button type="submit">Sign out</button></form>',
    )


def signed_out() -> str:
    return page("Signed out", '<p>You are signed out. <a href="/auth/sign-in">Sign in</a></p>')
