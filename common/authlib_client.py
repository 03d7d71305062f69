"""authlib's httpx OAuth 2.0 client, imported once for every user.

authlib 1.8+ prefers the httpx2 package and warns once, at import, when it falls back to httpx,
which is what this suite uses (and what the exceptions callers catch are)."""

from __future__ import annotations

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["AsyncOAuth2Client"]
