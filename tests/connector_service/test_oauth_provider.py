"""The allowed-address rule on the requests to OAuth providers (token exchange, refresh,
revocation): the URLs come from a connector's manifest and the requests carry client secrets
and refresh tokens, so they go through the rule connector calls go through, at connect time,
and never through a proxy from the environment. No database or provider needed: a recording
token endpoint on loopback stands in for one."""

from __future__ import annotations

import pytest

from common.endpoints import EndpointPolicy, parse_networks
from connector_service.oauth import provider
from connector_service.oauth.config import Client
from connector_service.oauth.errors import ProviderNotAllowed
from tests.connector_service.oauth_servers import recording_endpoint

CLIENT = Client("platform-app", "platform-secret")
ONLY_127_0_0_1 = EndpointPolicy(parse_networks("127.0.0.1/32,::1/128"))
EVERYWHERE = EndpointPolicy(parse_networks("0.0.0.0/0,::/0"))
LOOPBACK = EndpointPolicy(parse_networks("127.0.0.0/8"))


async def _all_three(policy: EndpointPolicy, url: str) -> str | None:
    """Exchange and refresh (each must raise ProviderNotAllowed), then revoke (its outcome)."""
    with pytest.raises(ProviderNotAllowed) as caught:
        await provider.exchange_code(
            CLIENT, policy=policy, token_url=url, code="a-code", code_verifier="v" * 43,
            redirect_uri="http://127.0.0.1/cb", timeout_seconds=2,
        )  # fmt: skip
    assert caught.value.status == 422 and caught.value.code == "oauth_provider_not_allowed"
    assert caught.value.detail.startswith("the connector's token_url: ")
    with pytest.raises(ProviderNotAllowed):
        await provider.refresh(
            CLIENT, policy=policy, token_url=url, refresh_token="a-refresh-token",
            timeout_seconds=2,
        )  # fmt: skip
    with pytest.raises(ProviderNotAllowed):
        await provider.check_endpoint(policy, url, what="token_url")
    return await provider.revoke(
        CLIENT, policy=policy, revoke_url=url, token="a-refresh-token", hint="refresh_token",
        timeout_seconds=2,
    )  # fmt: skip


async def test_a_provider_outside_the_allowed_networks_is_never_connected_to():
    async with recording_endpoint("127.0.0.2") as outside:
        why = await _all_three(ONLY_127_0_0_1, outside.url)
        assert why is not None and why.startswith(
            "endpoint not allowed: the connector's revoke_url"
        )
        assert "127.0.0.2" in why and "a-refresh-token" not in why
        assert outside.requests == []  # nothing was sent: not even a connection

        # the same endpoint under a rule that allows it: the recorder does record
        token = await provider.refresh(
            CLIENT, policy=LOOPBACK, token_url=outside.url, refresh_token="a-refresh-token",
            timeout_seconds=2,
        )  # fmt: skip
        assert token["access_token"] == "from-the-recorder"
        assert len(outside.requests) == 1 and b"a-refresh-token" in outside.requests[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/token",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/token",
    ],
)
async def test_metadata_and_link_local_addresses_are_refused_even_under_0_0_0_0(url):
    why = await _all_three(EVERYWHERE, url)
    assert why is not None and why.startswith("endpoint not allowed: ")


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/token", "http://user:pw@127.0.0.1/token", "file:///etc/passwd"]
)
async def test_urls_no_address_can_fix_are_refused(url):
    why = await _all_three(LOOPBACK, url)
    assert why is not None and why.startswith("endpoint not allowed: ")


async def test_no_proxy_from_the_environment(monkeypatch):
    """A proxy would be connected to instead of the provider: the rule would judge the wrong
    address, and the proxy would see the secrets."""
    async with recording_endpoint("127.0.0.2") as proxy, recording_endpoint("127.0.0.1") as real:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url.removesuffix("/token"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        token = await provider.refresh(
            CLIENT, policy=LOOPBACK, token_url=real.url, refresh_token="a-refresh-token",
            timeout_seconds=2,
        )  # fmt: skip
        assert token["access_token"] == "from-the-recorder"
        assert await provider.revoke(
            CLIENT, policy=LOOPBACK, revoke_url=real.url, token="t", hint="access_token",
            timeout_seconds=2,
        ) is None  # fmt: skip
    assert len(real.requests) == 2 and proxy.requests == []


async def test_the_authorization_url_takes_the_connectors_parameters_and_scope_separator():
    """A connector's own parameters join the request (Google's access_type=offline) but never
    replace the flow's own; scopes are joined as the connector says (Linear: a comma)."""
    from urllib.parse import parse_qs, urlsplit

    url = await provider.authorization_url(
        client_id="id", authorize_url="https://auth.example.com/authorize",
        redirect_uri="https://seedos.example/cb", scopes=["read", "write"], state="s",
        code_verifier="v" * 50, extra={"access_type": "offline", "state": "hijacked",
                                       "redirect_uri": "https://evil.example/"},
        scope_separator=",",
    )  # fmt: skip
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["state"] == "s" and query["redirect_uri"] == "https://seedos.example/cb"
    assert query["scope"] == "read,write"
