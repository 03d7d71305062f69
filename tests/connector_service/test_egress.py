"""Outbound calls go only where they should: the connector rule (connector endpoints) and the
egress rule (OAuth token and revocation URLs), in development and in production, probed with
loopback, metadata and private addresses in their many spellings, a name resolving into private
space, and URLs whose path a ``#`` or ``?`` would move.

Nothing here sends a packet off 127.0.0.0/8 and [::1]: names resolve through tests/common/hosts.py
(no DNS), the calls' network backend only records where it was asked to connect (and connects
nowhere), and a socket guard refuses and records any other connect or name lookup. A refusal is
shown to happen before connecting: the backend was never asked, and the guard saw nothing.
"""

from __future__ import annotations

import uuid

import httpcore
import httpx
import pytest

from common.endpoints import EndpointNotAllowed, EndpointPolicy, parse_address
from common.settings import CommonSettings
from connector_service.manager import errors
from connector_service.manager.breaker import Breakers
from connector_service.manager.manager import ConnectorManager, Target, Timeouts, _failure
from connector_service.manager.recorder import Recorder
from connector_service.manager.transport import CheckedTransport
from connector_service.oauth import provider
from connector_service.oauth.config import Client
from connector_service.oauth.errors import ProviderNotAllowed
from marketplace_service.publishing.schemas import PublishIn
from marketplace_service.publishing.service import check as publish_check
from tests.common.hosts import outside_connects, resolver

CONNECTOR, EGRESS = "connector", "egress"
DEV, PROD = "development", "production"
NOWHERE: frozenset[tuple[str, str]] = frozenset()
LOOPBACK_IN_DEV = frozenset({(CONNECTOR, DEV)})
CONNECTORS = frozenset({(CONNECTOR, DEV), (CONNECTOR, PROD)})
PUBLIC = frozenset({(EGRESS, DEV), (EGRESS, PROD)})

# url -> the (rule, mode) pairs whose default networks allow it
PROBES: dict[str, frozenset[tuple[str, str]]] = {
    "http://127.0.0.1:8010/": LOOPBACK_IN_DEV,
    "http://0x7f.1:8010/": LOOPBACK_IN_DEV,
    "http://2130706433:8010/": LOOPBACK_IN_DEV,
    "http://127.1:8010/": LOOPBACK_IN_DEV,
    "http://0x7f.0.0.1:8010/": LOOPBACK_IN_DEV,
    "http://[::1]:8010/": LOOPBACK_IN_DEV,
    "http://[::ffff:127.0.0.1]:8010/": LOOPBACK_IN_DEV,
    "http://loopback.test:8010/": LOOPBACK_IN_DEV,
    "http://0177.0.0.1:8010/": NOWHERE,  # no HTTP client takes this spelling: refused as a URL
    "http://169.254.169.254/latest/meta-data/": NOWHERE,
    "http://2852039166/latest/meta-data/": NOWHERE,
    "http://0xa9fea9fe/latest/meta-data/": NOWHERE,
    "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/": NOWHERE,
    "http://169.254.43518/latest/meta-data/": NOWHERE,
    "http://0251.0376.0251.0376/latest/meta-data/": NOWHERE,
    "http://[::ffff:169.254.169.254]/latest/meta-data/": NOWHERE,
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/": NOWHERE,
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/": NOWHERE,
    "http://[2002:a9fe:a9fe::]/latest/meta-data/": NOWHERE,
    "http://[fd00:ec2::254]/latest/meta-data/": NOWHERE,
    "http://metadata.test/latest/meta-data/": NOWHERE,
    "http://internal.test:8080/": CONNECTORS,  # a name resolving into private space
    "http://mapped.test:8080/": CONNECTORS,  # ... as an IPv4-mapped IPv6 address
    "http://mixed.test/": NOWHERE,  # public and private: every address must pass
    "http://public.test/": PUBLIC,
    "http://127.0.0.1:8010/#": NOWHERE,  # a trailing '#' would cut the contract's path off
    "http://internal.test:8080/#": NOWHERE,
    "http://public.test/#": NOWHERE,
    "http://0x7f.1:8010/base#": NOWHERE,
}
# where the recording backend is asked to connect when a probe is allowed
RESOLVED = {
    "internal.test": "10.1.2.3", "mapped.test": "::ffff:a01:203", "public.test": "93.184.216.34",
    "loopback.test": "127.0.0.1",
}  # fmt: skip
CASES = [
    (url, rule, mode) for url in PROBES for rule in (CONNECTOR, EGRESS) for mode in (DEV, PROD)
]
CLIENT = Client("platform-app", "platform-secret")


@pytest.fixture(autouse=True)
def guard(monkeypatch):
    with outside_connects(monkeypatch) as attempts:
        yield attempts
    assert attempts == []  # not a connect nor a name lookup left this machine


def _policy(rule: str, mode: str, tmp_path) -> EndpointPolicy:
    """The rule's default networks in ``mode``, resolving through the test hosts."""
    settings = CommonSettings(env=mode, internal_token_key="k" * 40, data_dir=tmp_path)
    policy = settings.endpoint_policy() if rule == CONNECTOR else settings.egress_policy()
    return policy.using(resolver)


class Recording(httpcore.AsyncNetworkBackend):
    """A network backend that notes where it was asked to connect, and connects nowhere."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None,  # noqa: ASYNC109
                          socket_options=None) -> httpcore.AsyncNetworkStream:  # fmt: skip
        self.connects.append((host, port))
        raise httpcore.ConnectError("the recording backend connects nowhere")

    async def sleep(self, seconds: float) -> None:
        return None


async def _no_credentials(_target, _force: bool) -> dict[str, str]:
    return {}


def _manager(policy: EndpointPolicy, backend: Recording) -> ConnectorManager:
    limits = httpx.Limits(max_connections=4)
    return ConnectorManager(
        policy=policy, breakers=Breakers(threshold=100, open_seconds=1),
        recorder=Recorder(None, flush_seconds=1, batch_size=10, max_queued=100),  # type: ignore[arg-type]
        credentials=_no_credentials, timeouts=Timeouts(connect=1, check=2, call=2, sync=2),
        max_attempts=1, transport=CheckedTransport(policy, limits=limits, inner=backend),
    )  # fmt: skip


def _target(url: str) -> Target:
    return Target(id=uuid.uuid4(), tenant_id=uuid.uuid4(), connector_name="probe",
                  service_name="probe", status="active", config={}, endpoint_url=url)  # fmt: skip


@pytest.mark.parametrize(("url", "rule", "mode"), CASES)
async def test_probes_under_both_rules_and_both_modes(url, rule, mode, tmp_path):
    """Where the rule allows the probe, the check passes; otherwise it is refused, naming the
    host as written and never an address it resolved to."""
    policy = _policy(rule, mode, tmp_path)
    allowed = (rule, mode) in PROBES[url]
    if allowed:
        await policy.check(url, fixed_path=rule == CONNECTOR)
        return
    with pytest.raises(EndpointNotAllowed) as caught:
        await policy.check(url, fixed_path=rule == CONNECTOR)
    for address in ("10.1.2.3", "93.184.216.34", "169.254.169.254"):
        assert address not in caught.value.detail or address in url


@pytest.mark.parametrize(("url", "rule", "mode"), CASES)
async def test_calls_are_refused_before_connecting(url, rule, mode, tmp_path):
    """The same probes as calls through the checked transport: a refused one never reaches the
    network backend; an allowed one reaches it with exactly the address checked."""
    policy = _policy(rule, mode, tmp_path)
    backend = Recording()
    allowed = (rule, mode) in PROBES[url]
    if rule == CONNECTOR:  # as the manager calls a connector: admitted first, then sent
        manager = _manager(policy, backend)
        try:
            with pytest.raises(errors.ConnectorUnavailable if allowed else EndpointNotAllowed):
                await manager.check(_target(url))
        finally:
            await manager.aclose()
    else:  # as the OAuth requests go: the URL's syntax first, then through the transport
        transport = CheckedTransport(policy, limits=httpx.Limits(), inner=backend)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError if allowed else EndpointNotAllowed):
                policy.check_syntax(url, fixed_path=False)
                await client.post(url)
    if not allowed:
        assert backend.connects == []
    else:
        host = httpx.URL(url).host
        expected = RESOLVED.get(host) or str(parse_address(host))
        assert [h for h, _ in backend.connects] == [expected]


@pytest.mark.parametrize(
    ("url", "mode"), [(u, m) for u in PROBES for m in (DEV, PROD) if (EGRESS, m) not in PROBES[u]]
)
async def test_oauth_requests_follow_the_egress_rule(url, mode, tmp_path, guard):
    """Token exchange, refresh and revocation to a probe the egress rule refuses: refused with
    nothing sent, no connection tried (the socket guard saw none)."""
    policy = _policy(EGRESS, mode, tmp_path)
    token_url = url + ("token" if url.endswith("/") else "")
    with pytest.raises(ProviderNotAllowed):
        await provider.check_endpoint(policy, token_url, what="token_url")
    with pytest.raises(ProviderNotAllowed):
        await provider.exchange_code(
            CLIENT, policy=policy, token_url=token_url, code="c", code_verifier="v" * 43,
            redirect_uri="http://127.0.0.1/cb", timeout_seconds=2,
        )  # fmt: skip
    with pytest.raises(ProviderNotAllowed):
        await provider.refresh(
            CLIENT, policy=policy, token_url=token_url, refresh_token="r", timeout_seconds=2
        )
    why = await provider.revoke(
        CLIENT, policy=policy, revoke_url=token_url, token="t", hint="access_token",
        timeout_seconds=2,
    )  # fmt: skip
    assert why is not None and why.startswith("endpoint not allowed: ")
    assert guard == []


def _body(endpoint_url: str, **auth: str) -> PublishIn:
    manifest = {
        "name": "probe", "version": "1.0.0", "display_name": "Probe", "description": "probes",
        "auth": {"scheme": "oauth2", "scopes": ["read"],
                 "authorize_url": "https://public.test/authorize",
                 "token_url": "https://public.test/token"} | auth,
        "config_schema": {"type": "object", "properties": {}}, "streams": [], "actions": [],
    }  # fmt: skip
    return PublishIn(manifest=manifest, endpoint_url=endpoint_url)


async def _publish(body: PublishIn, mode: str, tmp_path) -> list[dict]:
    try:
        await publish_check(
            body, connector=_policy(CONNECTOR, mode, tmp_path),
            egress=_policy(EGRESS, mode, tmp_path),
        )  # fmt: skip
    except EndpointNotAllowed as exc:
        assert exc.code == "endpoint_not_allowed"
        return exc.extra["errors"]
    return []


@pytest.mark.parametrize("mode", [DEV, PROD])
async def test_publish_checks_endpoints_as_connectors_and_oauth_urls_as_egress(mode, tmp_path):
    assert await _publish(_body("http://internal.test:8080"), mode, tmp_path) == []
    assert await _publish(
        _body("http://internal.test:8080/base", token_url="https://public.test/t?realm=a",
              revoke_url="https://public.test/revoke"), mode, tmp_path,
    ) == []  # fmt: skip
    refused = await _publish(
        _body("http://internal.test:8080/#", token_url="http://internal.test/token",
              revoke_url="http://0xa9fea9fe/revoke"), mode, tmp_path,
    )  # fmt: skip
    assert [e["path"] for e in refused] == [
        "/endpoint_url",
        "/manifest/auth/token_url",
        "/manifest/auth/revoke_url",
    ]
    assert "fragment" in refused[0]["message"]
    assert refused[1]["message"] == (
        "host 'internal.test' is outside the egress networks (SEEDOS_EGRESS_ALLOWED_NETWORKS)"
    )
    assert not any("10.1.2.3" in e["message"] or "169.254" in e["message"] for e in refused)
    for endpoint in ("http://internal.test:8080/?", "http://internal.test:8080/x?y=1",
                     "http://internal.test:8080/a/../b", "http://public.test/",
                     "http://metadata.test/", "http://0x7f.1:8010/base#"):  # fmt: skip
        assert [e["path"] for e in await _publish(_body(endpoint), mode, tmp_path)] == [
            "/endpoint_url"
        ], endpoint
    loopback = await _publish(_body("http://127.0.0.1:8010"), mode, tmp_path)
    assert [e["path"] for e in loopback] == ([] if mode == DEV else ["/endpoint_url"])


def _answer(status: int, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": content_type})


@pytest.mark.parametrize("status", [401, 404, 422, 500, 503])
def test_an_answer_that_is_not_a_contract_problem_is_known_by_its_status_alone(status):
    """An endpoint that is some other service (a database's HTTP API, an admin page) answering
    with its own JSON: nothing of the body is shown, whatever its fields are called."""
    body = {"detail": "redis_version:7.2 secret-banner", "title": "internal admin",
            "code": "secret_banner", "errors": [{"path": "/x", "message": "secret-banner"}]}  # fmt: skip
    exc = _failure("probe", _answer(status, httpx.Response(200, json=body).content), body)
    assert exc.detail == f"probe: answered HTTP {status}"
    assert "secret" not in str(exc.extra) and exc.extra["connector_status"] == status
    # not even when it says it is problem+json, without the contract's category
    exc = _failure("probe", _answer(status, b"{}", "application/problem+json"), body)
    assert exc.detail == f"probe: answered HTTP {status}" and "secret" not in str(exc.extra)


def test_a_contract_problem_keeps_a_short_printable_message():
    problem = {"type": "urn:seedos:problem:auth_failed", "code": "auth_failed",
               "category": "permanent", "detail": "the CRM refused the API key\n\x1b[31m\u202e"
               + "x" * 500, "errors": [{"path": "/a", "message": "bad\x00", "value": "kept?"}]}  # fmt: skip
    exc = _failure("crm", _answer(401, b"{}", "application/problem+json"), problem)
    assert isinstance(exc, errors.ConnectorAuthFailed)
    assert exc.detail.startswith("crm: the CRM refused the API key [31m x")
    assert len(exc.detail) <= len("crm: ") + errors.MESSAGE_LIMIT and exc.detail.endswith("...")
    assert exc.detail.isprintable()
    assert exc.extra["connector_code"] == "auth_failed"
    assert exc.extra["errors"] == [{"path": "/a", "message": "bad"}]
    odd = {**problem, "code": "<script>", "detail": "\u200b\u202e"}
    exc = _failure("crm", _answer(401, b"{}", "application/problem+json"), odd)
    assert exc.extra["connector_code"] is None and exc.detail == "crm: answered HTTP 401"
