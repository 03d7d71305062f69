"""OAuth 2.0 bearer tokens checked by RFC 7662 introspection against a real authorization server.

The authorization server is oidc-provider (tests/oidc/server.mjs, run with Node); the demo CRM
introspects with its own client credentials and requires the ``crm.read`` scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import AuthServer, CrmServer


def oauth_settings(auth_server: AuthServer) -> dict[str, str]:
    return {
        "DEMO_CRM_INTROSPECTION_URL": auth_server.endpoints["introspection_endpoint"],
        "DEMO_CRM_INTROSPECTION_CLIENT_ID": "demo-crm",
        "DEMO_CRM_INTROSPECTION_CLIENT_SECRET": "demo-crm-secret",
        "DEMO_CRM_REQUIRED_SCOPE": "crm.read",
    }


@pytest.fixture(scope="module")
def crm_with_oauth(start_crm: Callable[..., CrmServer], auth_server: AuthServer) -> CrmServer:
    return start_crm(env=oauth_settings(auth_server))


async def test_token_from_client_credentials_is_accepted(
    crm_with_oauth: CrmServer, auth_server: AuthServer
) -> None:
    token = auth_server.token(scope="crm.read crm.write")
    async with crm_with_oauth.client({"Authorization": f"Bearer {token}"}) as http:
        listed = await http.get("/v1/contacts")
        created = await http.post("/v1/contacts", json={"email": "oauth-client@example.com"})
    assert listed.status_code == 200
    assert created.status_code == 201


async def test_unknown_token_is_401(crm_with_oauth: CrmServer) -> None:
    async with crm_with_oauth.client({"Authorization": "Bearer garbage-token"}) as http:
        response = await http.get("/v1/contacts")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_token_without_the_required_scope_is_403(
    crm_with_oauth: CrmServer, auth_server: AuthServer
) -> None:
    token = auth_server.token(scope="crm.write")
    async with crm_with_oauth.client({"Authorization": f"Bearer {token}"}) as http:
        response = await http.get("/v1/contacts")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_revoked_token_is_401(crm_with_oauth: CrmServer, auth_server: AuthServer) -> None:
    token = auth_server.token(scope="crm.read")
    auth_server.revoke(token)
    async with crm_with_oauth.client({"Authorization": f"Bearer {token}"}) as http:
        response = await http.get("/v1/contacts")
    assert response.status_code == 401


async def test_authorization_server_down_is_503_but_cached_tokens_still_work(
    start_crm: Callable[..., CrmServer], start_auth_server: Callable[[], AuthServer]
) -> None:
    auth_server = start_auth_server()  # this test stops it
    crm_with_oauth = start_crm(env=oauth_settings(auth_server))
    used = auth_server.token(scope="crm.read")
    unused = auth_server.token(scope="crm.read")
    async with crm_with_oauth.client({"Authorization": f"Bearer {used}"}) as http:
        assert (await http.get("/v1/contacts")).status_code == 200
    auth_server.stop()
    async with crm_with_oauth.client({"Authorization": f"Bearer {used}"}) as http:
        assert (await http.get("/v1/contacts")).status_code == 200  # introspected < 30 s ago
    async with crm_with_oauth.client({"Authorization": f"Bearer {unused}"}) as http:
        response = await http.get("/v1/contacts")
    assert response.status_code == 503
    assert response.json()["error"] == "introspection_unavailable"


async def test_api_keys_still_work_alongside_introspection(crm_with_oauth: CrmServer) -> None:
    async with crm_with_oauth.client() as http:
        assert (await http.get("/v1/contacts")).status_code == 200
