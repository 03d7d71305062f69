"""Fixtures the gateway's browser tests share: one Chromium for the whole directory, fresh
contexts (each a separate browser, with its own cookies), and OpenID providers on loopback."""

from tests.browser import chromium, new_browser  # noqa: F401
from tests.oidc_people import start_oidc_provider  # noqa: F401
