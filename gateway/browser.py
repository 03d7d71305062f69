"""What every gateway response carries for browsers, as one ASGI layer around the whole app
(proxied paths included): security headers, the cookies a request's authentication asked to
set (a rotated session id), and CORS for configured origins only.

- ``Content-Security-Policy`` without ``unsafe-inline``: the gateway's pages use no inline
  script or style. ``/docs`` (Swagger UI, from its CDN) gets its own policy naming the CDN and
  the hash of its one inline script.
- ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  same-origin``, ``Cross-Origin-Opener-Policy: same-origin``, HSTS when the public URL is
  https (it must be when the gateway serves TLS itself). An upstream's own values are kept
  where it set them.
- No HSTS to a request for ``localhost``: a browser applies it to the host, every port
  included, and would send each other development server on localhost to https for two years.
  (Browsers ignore HSTS from an IP address such as 127.0.0.1 anyway.)
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = b"max-age=63072000; includeSubDomains"
_NO_STORE_PREFIXES = ("/auth/", "/api/v1/me")
SWAGGER_CDN = "https://cdn.jsdelivr.net"


def policy(form_action: list[str], *, extra_script: str = "", extra_style: str = "",
            extra_img: str = "") -> bytes:  # fmt: skip
    directives = [
        "default-src 'self'",
        f"script-src 'self'{extra_script}",
        f"style-src 'self'{extra_style}",
        f"img-src 'self' data:{extra_img}",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action " + " ".join(["'self'", *form_action]),
    ]
    return "; ".join(directives).encode()


def _swagger_script_hashes() -> str:
    html = get_swagger_ui_html(openapi_url="/openapi.json", title="SEED-OS API").body.decode()
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    return "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )


class BrowserSafety:
    def __init__(
        self,
        app: ASGIApp,
        *,
        https: bool,
        form_action: list[str],
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        self.app: ASGIApp = app
        if cors_origins:
            self.app = CORSMiddleware(
                app,
                allow_origins=list(cors_origins),
                allow_credentials=False,  # bearer credentials only: cookies stay same-site
                allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "idempotency-key",
                    "if-match",
                    "if-none-match",
                    "x-request-id",
                    "x-seedos-tenant",  # a bearer JWT's person chooses a tenant
                ],
                expose_headers=["etag", "location", "retry-after", "x-request-id"],
                max_age=600,
            )
        self.common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        self.https = https
        self.csp = policy(form_action)
        self.docs_csp = policy(
            form_action,
            extra_script=f" {SWAGGER_CDN}{_swagger_script_hashes()}",
            extra_style=f" {SWAGGER_CDN}",
            extra_img=" https://fastapi.tiangolo.com",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        csp = self.docs_csp if path == "/docs" else self.csp
        no_store = path.startswith(_NO_STORE_PREFIXES)
        hsts = self.https and not _for_localhost(scope)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self.common if h[0] not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if hsts and b"strict-transport-security" not in present:
                    headers.append((b"strict-transport-security", HSTS))
                if no_store and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                headers += scope.get("state", {}).get("set_cookies", ())
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, secured)


def _for_localhost(scope: Scope) -> bool:
    """Whether the request's Host is localhost or a name under it (an IPv6 literal is not)."""
    for name, value in scope["headers"]:
        if name == b"host":
            host = b"" if value.startswith(b"[") else value.lower().partition(b":")[0]
            host = host.rstrip(b".")
            return host == b"localhost" or host.endswith(b".localhost")
    return False
