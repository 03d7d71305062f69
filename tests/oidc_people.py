"""People signing in through a real OpenID provider: the npm oidc-provider test server
(sdk/tests/oidc/server.mjs) with web clients and accounts of the test's choosing, and the steps
a person takes on its pages in a real browser (tests/browser.py).

The server starts through the connector service's OAuth helper (``start_auth_server`` of
tests/connector_service/oauth_servers.py, which adds the demo CRM's introspection client): one
way to start it. This module adds the OpenID side: accounts with claims, web clients that sign
people in and out, and a person's steps on the provider's pages.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from tests.connector_service.oauth_servers import AuthServer, start_auth_server

PEOPLE: dict[str, dict] = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice"},
    "bob": {"email": "bob@example.com", "email_verified": True, "name": "Bob"},
    # an address nobody proved is theirs
    "mallory": {"email": "mallory@example.com", "email_verified": False, "name": "Mallory"},
}
SIGN_IN_SCOPE = "openid email profile"
ANY_PASSWORD = "any"  # the development login page takes any
END_SESSION_PATH = "/session/end"  # where the provider asks whether to sign out


def web_client(
    client_id: str,
    client_secret: str,
    *,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
) -> dict:
    """The metadata of a confidential web client that signs people in (authorization code with
    PKCE S256, client_secret_basic) and may send them back after signing out."""
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "scope": SIGN_IN_SCOPE,
    }


@contextmanager
def oidc_provider(
    *,
    clients: list[dict],
    log_path: Path,
    accounts: dict[str, dict] | None = None,
    id_token_ttl: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[AuthServer]:
    """server.mjs on 127.0.0.1 (a free port) with these clients and accounts (login name ->
    claims; :data:`PEOPLE` by default), for as long as the block lasts. Its ``endpoints`` hold
    issuer, authorization_endpoint, token_endpoint, jwks_uri and end_session_endpoint.
    ``id_token_ttl`` (seconds) shortens ID tokens' lifetime; ``env`` adds server.mjs settings."""
    settings = {"OIDC_ACCOUNTS": json.dumps(PEOPLE if accounts is None else accounts)}
    if id_token_ttl is not None:
        settings["OIDC_ID_TOKEN_TTL"] = str(id_token_ttl)
    server = start_auth_server(
        clients=clients, env={"OIDC_HOST": "127.0.0.1", **settings, **(env or {})},
        log_path=log_path,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_oidc_provider(tmp_path: Path) -> Iterator[Callable[..., AuthServer]]:
    """Starts providers (:func:`oidc_provider`: the same keyword arguments but ``log_path``);
    they stop when the test ends. Their logs are ``oidc-N.log`` in the test's ``tmp_path``."""
    logs = itertools.count()
    with ExitStack() as stack:

        def start(**options: Any) -> AuthServer:
            log_path = tmp_path / f"oidc-{next(logs)}.log"
            return stack.enter_context(oidc_provider(log_path=log_path, **options))

        yield start


_PROMPT = 'form[action*="/interaction/"] input[name="prompt"]'


async def sign_in_at_provider(page: Page, login: str, *, password: str = ANY_PASSWORD) -> str:
    """Sign ``login`` in on the provider's development pages ``page`` shows: fill the login name
    (and the password, if asked), submit, and approve the consent page if the provider shows
    one. Returns the URL the browser ends on once it has left the provider's pages (the relying
    party's redirect URI, or wherever that sent it). When the provider already knows the person
    and their consent, it shows no page and this returns at once."""
    for _step in range(4):
        prompt = page.locator(_PROMPT)
        if not await prompt.count():
            return page.url
        left = page.url
        if await prompt.get_attribute("value") == "login":
            form = page.locator('form:has(input[name="prompt"][value="login"])')
            await form.locator('input[name="login"]').fill(login)
            if await form.locator('input[name="password"]').count():
                await form.locator('input[name="password"]').fill(password)
        else:
            form = page.locator('form:has(input[name="prompt"][value="consent"])')
        await form.locator('button[type="submit"]').click()
        await page.wait_for_url(lambda url, left=left: url != left)
    raise AssertionError(f"the provider kept asking: {page.url}")


async def sign_out_at_provider(page: Page) -> str:
    """Confirm signing out on the provider's RP-initiated logout page ``page`` shows (the
    end_session_endpoint): the provider asks only when someone is signed in there. Returns the
    URL the browser ends on once it has left that page: the client's post_logout_redirect_uri
    (with its ``state``), or the provider's own "signed out" page when the request named none."""
    yes = page.locator('button[form="op.logoutForm"][name="logout"][value="yes"]')
    try:
        asks = urlsplit(page.url).path == END_SESSION_PATH and await yes.count() > 0
    except PlaywrightError:  # the page already posts itself (nobody was signed in)
        asks = False
    if asks:
        await yes.click()
    await page.wait_for_url(lambda url: urlsplit(url).path != END_SESSION_PATH)
    return page.url
