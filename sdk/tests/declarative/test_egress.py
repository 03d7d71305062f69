"""The generic connector calls a definition's API only where the egress rule allows, checked
when connecting (seedos_sdk.egress).

Real sockets on 127.0.0.1 only: the API is a small HTTP server on a loopback port that counts
every connection it accepts (and, once stopped, any still waiting to be accepted), so a refusal
is shown to come before connecting. Nothing is ever sent off this machine: names resolve through
a test resolver (no DNS), and a socket guard refuses (and records) any connect or name lookup
other than to loopback; refused metadata and private addresses must leave it empty.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest

from seedos_sdk.declarative.server import create_generic_app
from seedos_sdk.egress import (
    EGRESS_SETTING,
    AddressPolicy,
    CheckedTransport,
    HostNotResolved,
    egress_policy,
)
from seedos_sdk.errors import PermanentError, RetryableError
from seedos_sdk.http import HttpClient
from seedos_sdk.testing.network import outside_connects

DEFINITION = """\
definition_version: 1
name: egress-probe
version: 1.0.0
base_url: "{{ config.base_url }}"
auth: {type: none}
config_schema:
  type: object
  properties: {base_url: {type: string}}
  required: [base_url]
check:
  request: {path: /ping}
streams:
  - name: items
    primary_key: id
    schema: {type: object, properties: {id: {type: string}}, required: [id]}
    request: {path: /items}
    records: items
"""
# what the demo runs with: public addresses, and loopback listed on purpose
PUBLIC_AND_LOOPBACK = "0.0.0.0/0,::/0,127.0.0.0/8,::1/128"
HOSTS: dict[str, tuple[str, ...]] = {
    "metadata.test": ("169.254.169.254",),
    "internal.test": ("10.1.2.3",),
    "loopback.test": ("127.0.0.1",),
    "mixed.test": ("127.0.0.1", "169.254.169.254"),  # one allowed, one not: refused
}


async def resolver(host: str, port: int) -> Sequence[str]:
    """:data:`HOSTS`, without DNS; any other name does not resolve."""
    try:
        return HOSTS[host.lower()]
    except KeyError:
        raise HostNotResolved(f"host {host!r} does not resolve") from None


# ------------------------------------------------------------------------------- fixtures


class Api(ThreadingHTTPServer):
    """The external API on a loopback port: answers ``/ping`` and ``/items``, closes each
    connection after one answer (HTTP/1.0), and counts the connections it accepts."""

    daemon_threads = True

    def __init__(self) -> None:
        self.accepted = 0
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        self.accepted += 1
        return sock, address

    def connections(self) -> int:
        """Stop, and every connection ever made to the port: those accepted, and those the
        kernel completed that were never accepted (none may hide in the backlog)."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.socket.setblocking(False)
        pending = 0
        while True:
            try:
                sock, _ = self.socket.accept()
            except BlockingIOError:
                return self.accepted + pending
            sock.close()
            pending += 1


class _Handler(BaseHTTPRequestHandler):
    server: Api

    def do_GET(self) -> None:
        self.server.requests.append((self.path.split("?", 1)[0], self.headers.get("host", "")))
        body = json.dumps({"items": [{"id": "1"}]} if self.path.startswith("/items") else {})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.connections()
    server.server_close()


@pytest.fixture(autouse=True)
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every attempt to connect to, or resolve, something other than loopback: refused before
    the system call (so no packet leaves) and listed; none may happen."""
    with outside_connects(monkeypatch) as attempts:
        yield attempts
    assert attempts == []  # nothing left this machine, not even a name lookup


class Generic:
    """The generic connector serving the probe definition, in this process."""

    def __init__(self, folder: Path, egress: AddressPolicy | None) -> None:
        self.app = create_generic_app(folder, egress=egress)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url="http://g")

    async def call(self, what: str, base_url: str) -> httpx.Response:
        listing = (await self.http.get("/definitions")).json()["items"]
        body = {"config": {"base_url": base_url}, "credentials": {}}
        return await self.http.post(f"{listing[0]['path']}/{what}", json=body)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.app.library.aclose()


@pytest.fixture
async def generic(tmp_path: Path):
    """``await generic(egress)``: the generic connector under that rule (None: as
    ``SEEDOS_EGRESS_ALLOWED_NETWORKS`` says)."""
    (tmp_path / "probe.yaml").write_text(DEFINITION)
    started: list[Generic] = []

    async def start(egress: AddressPolicy | None = None) -> Generic:
        started.append(Generic(tmp_path, egress))
        return started[-1]

    yield start
    for one in started:
        await one.aclose()


def _rule(networks: str) -> AddressPolicy:
    return egress_policy({EGRESS_SETTING: networks}).using(resolver)


def _refused(response: httpx.Response, host: str) -> None:
    """The contract's answer to a refused call: permanent, naming the host as written and the
    setting, never an address it resolved to."""
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["category"]) == ("egress_refused", "permanent")
    assert f"host {host!r} is outside the egress networks ({EGRESS_SETTING})" in problem["detail"]
    for address in ("169.254.169.254", "10.1.2.3"):
        assert address not in problem["detail"] or address in host


# ---------------------------------------------------------------------------------- tests


async def test_an_api_on_loopback_is_refused_by_default(api, generic, monkeypatch):
    """Unset, the rule is public addresses only: the contract answers the refusal, and the API's
    port never saw a connection."""
    monkeypatch.delenv(EGRESS_SETTING, raising=False)
    connector = await generic()
    base_url = f"http://127.0.0.1:{api.port}"
    _refused(await connector.call("check", base_url), "127.0.0.1")
    _refused(await connector.call("streams/items/read", base_url), "127.0.0.1")
    assert await asyncio.to_thread(api.connections) == 0


async def test_an_api_on_loopback_is_reached_when_listed(api, generic, monkeypatch):
    monkeypatch.setenv(EGRESS_SETTING, "127.0.0.0/8")
    connector = await generic()
    base_url = f"http://127.0.0.1:{api.port}"
    assert (await connector.call("check", base_url)).json() == {"ok": True}
    read = await connector.call("streams/items/read", base_url)
    assert read.status_code == 200 and read.json()["records"] == [{"id": "1"}]
    assert [path for path, _ in api.requests] == ["/ping", "/items"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0x7f.1", "2130706433", "127.1", "[::ffff:127.0.0.1]", "loopback.test"]
)
async def test_loopback_in_any_spelling_is_refused_before_connecting(host, api, generic):
    """Hosts ``inet_aton`` reads as 127.0.0.1, IPv4 carried in IPv6, a name resolving there:
    judged as the address they denote, under the default rule; the port saw nothing."""
    connector = await generic(_rule("0.0.0.0/0,::/0"))
    response = await connector.call("check", f"http://{host}:{api.port}")
    _refused(response, host.strip("[]"))
    assert await asyncio.to_thread(api.connections) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://2852039166/latest/meta-data",  # 169.254.169.254 as one number
        "http://0xa9fea9fe/latest/meta-data",
        "http://169.254.43518/latest/meta-data",
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",  # AWS metadata over IPv6
        "http://metadata.test/latest/meta-data",  # a name resolving to it
        "http://internal.test:8080",  # private space
        "http://mixed.test:8080",  # loopback and metadata: every address must pass
    ],
)
async def test_metadata_and_private_addresses_are_refused_even_with_loopback_listed(
    url, generic, guard
):
    """The demo's rule (public, and loopback listed): metadata and private addresses stay out,
    and no connection to them is even attempted (the guard saw none)."""
    connector = await generic(_rule(PUBLIC_AND_LOOPBACK))
    _refused(await connector.call("check", url), httpx.URL(url).host)
    assert guard == []


async def test_a_name_cannot_rebind_to_a_forbidden_address(api, generic, guard):
    """A name that resolves to loopback (allowed) and then to the metadata address: the first
    call connects to the very address checked (no lookup of its own: the guard saw none); the
    next connection resolves again and is refused before connecting."""
    answers = iter([("127.0.0.1",), ("169.254.169.254",)])
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return next(answers)

    rule = egress_policy({EGRESS_SETTING: "127.0.0.0/8"}).using(rebinding)
    connector = await generic(rule)
    base_url = f"http://rebind.test:{api.port}"
    assert (await connector.call("check", base_url)).json() == {"ok": True}
    _refused(await connector.call("check", base_url), "rebind.test")
    assert asked == ["rebind.test", "rebind.test"]
    assert api.requests == [("/ping", f"rebind.test:{api.port}")]
    assert await asyncio.to_thread(api.connections) == 1
    assert guard == []


# ------------------------------------------------------------------------- the HTTP client


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


def _client(rule: AddressPolicy, backend: Recording) -> HttpClient:
    transport = CheckedTransport(rule, limits=httpx.Limits(), inner=backend)
    return HttpClient(transport=transport, max_attempts=1)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://0xa9fea9fe/", "http://metadata.test/",
     "http://0x7f.1:9/", "http://2130706433:9/", "https://internal.test/"],
)  # fmt: skip
async def test_the_client_refuses_before_its_backend_is_asked(url):
    backend = Recording()
    async with _client(_rule("0.0.0.0/0,::/0"), backend) as http:
        with pytest.raises(PermanentError) as caught:
            await http.get(url)
    assert caught.value.code == "egress_refused"
    assert repr(httpx.URL(url).host) in caught.value.message
    assert EGRESS_SETTING in caught.value.message
    assert backend.connects == []


async def test_the_client_connects_to_the_address_it_checked():
    """Allowed: the backend is asked for the resolved address, never the name."""
    backend = Recording()
    async with _client(_rule("127.0.0.0/8"), backend) as http:
        with pytest.raises(RetryableError):  # the recording backend connects nowhere
            await http.get("http://loopback.test:9/")
    assert backend.connects == [("127.0.0.1", 9)]


async def test_a_name_that_does_not_resolve_is_a_connection_error():
    backend = Recording()
    async with _client(_rule("0.0.0.0/0"), backend) as http:
        with pytest.raises(RetryableError) as caught:
            await http.get("http://nowhere.test/")
    assert caught.value.code == "connection_error" and backend.connects == []


def test_a_rule_and_a_transport_do_not_mix():
    with pytest.raises(TypeError):
        HttpClient(egress=egress_policy({}), transport=httpx.MockTransport(httpx.Response))


def test_the_setting_is_read_and_checked():
    loopback = ipaddress.ip_address("127.0.0.1")
    assert not egress_policy({}).address_allowed(loopback)
    assert egress_policy({EGRESS_SETTING: "127.0.0.0/8"}).address_allowed(loopback)
    with pytest.raises(ValueError, match=EGRESS_SETTING):
        egress_policy({EGRESS_SETTING: "0.0.0.0/0,nope"})
