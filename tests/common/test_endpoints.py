"""The address rules (connector and egress): which addresses, spellings and URLs they allow.
Names resolve through tests/common/hosts.py, never through DNS."""

from __future__ import annotations

import ipaddress

import pytest

from common.endpoints import (
    DEFAULT_ALLOWED,
    DEFAULT_ALLOWED_PRODUCTION,
    DEFAULT_EGRESS,
    EndpointNotAllowed,
    EndpointPolicy,
    join,
    parse_address,
    parse_networks,
)
from common.settings import CommonSettings
from tests.common.hosts import outside_connects, resolver


@pytest.fixture(autouse=True)
def no_outside_connects(monkeypatch):
    with outside_connects(monkeypatch) as attempts:
        yield
    assert attempts == []


def _policy(networks: str) -> EndpointPolicy:
    return EndpointPolicy(parse_networks(networks)).using(resolver)


def _allowed(networks: str, address: str) -> bool:
    return _policy(networks).address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.2.3.4", True),
        ("192.168.1.10", True),
        ("8.8.8.8", False),  # public: not by default
        ("169.254.169.254", False),  # cloud metadata
        ("169.254.10.1", False),  # link-local
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6, inside the private fc00::/7
        ("::ffff:169.254.169.254", False),  # IPv4-mapped
        ("0.0.0.0", False),
        ("100.64.0.1", False),  # shared (CGNAT) space: listed by name only
    ],
)
def test_default_networks(address, expected):
    assert _allowed(DEFAULT_ALLOWED, address) is expected


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1",
        "fd12::1", "100.64.0.1", "169.254.169.254", "169.254.10.1", "fe80::1", "0.0.0.0",
        "::", "224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1", "192.0.2.1",
        "198.51.100.1", "203.0.113.1", "2001:db8::1", "198.18.0.1", "192.0.0.8",
        "64:ff9b::a01:203", "2002:a01:203::1", "2001::1",
    ],
)  # fmt: skip
def test_wildcards_reach_no_special_range(address):
    """``0.0.0.0/0,::/0`` is public addresses only: loopback, private, link-local, metadata,
    "this network", multicast, broadcast, reserved and documentation ranges need their name."""
    assert not _allowed("0.0.0.0/0,::/0", address)
    assert not _allowed("0.0.0.0/1,128.0.0.0/1,::/1,8000::/1", address)


def test_special_ranges_are_reached_by_entries_as_narrow_as_they_are():
    assert _allowed("0.0.0.0/0,::/0", "8.8.8.8") and _allowed("::/0", "2606:4700::1111")
    assert _allowed("127.0.0.0/8", "127.0.0.2") and _allowed("127.0.0.1/32", "127.0.0.1")
    assert not _allowed("126.0.0.0/7", "127.0.0.1")  # broader than loopback's /8
    assert _allowed("10.0.0.0/8", "10.1.2.3") and not _allowed("8.0.0.0/6", "10.1.2.3")
    assert _allowed("100.64.0.0/10", "100.64.0.1")
    assert _allowed("169.254.169.254/32", "169.254.169.254")
    assert _allowed("169.254.0.0/16", "169.254.1.1")
    assert not _allowed("169.0.0.0/8", "169.254.1.1")
    assert not _allowed("169.254.0.0/16", "169.254.169.254")  # metadata needs its own /32
    assert not _allowed("fc00::/7", "fd00:ec2::254")


def test_default_networks_follow_the_mode(tmp_path):
    key = {"internal_token_key": "k" * 40, "data_dir": tmp_path}
    development = CommonSettings(env="development", **key)
    production = CommonSettings(env="production", **key)
    assert development.endpoint_allowed_networks == DEFAULT_ALLOWED
    assert production.endpoint_allowed_networks == DEFAULT_ALLOWED_PRODUCTION
    assert development.egress_allowed_networks == production.egress_allowed_networks
    assert production.egress_allowed_networks == DEFAULT_EGRESS
    loopback = ipaddress.ip_address("127.0.0.1")
    assert development.endpoint_policy().address_allowed(loopback)
    assert not production.endpoint_policy().address_allowed(loopback)
    assert production.endpoint_policy().address_allowed(ipaddress.ip_address("10.1.2.3"))
    for settings in (development, production):
        assert not settings.egress_policy().address_allowed(loopback)
        assert not settings.egress_policy().address_allowed(ipaddress.ip_address("10.1.2.3"))
        assert settings.egress_policy().address_allowed(ipaddress.ip_address("8.8.8.8"))
    listed = CommonSettings(env="production", endpoint_allowed_networks="127.0.0.0/8", **key)
    assert listed.endpoint_policy().address_allowed(loopback)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7F.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"), ("[::1]", "::1"), ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"), ("0251.0376.0251.0376", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"), ("example.test", None), ("08.1", None), ("1.2.3.4.5", None),
        ("256.1", None),
    ],
)  # fmt: skip
def test_hosts_spelled_as_numbers_are_the_address_they_denote(host, address):
    assert parse_address(host) == (ipaddress.ip_address(address) if address else None)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/",
        "http:///nohost",
        "http://user:pw@127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://8.8.8.8/",
        "http://127.0.0.1:99999/",
        "http://no-such-host.invalid/",
        "http://[::1/",
        "http://127.0.0.1:8010/#",
        "http://127.0.0.1:8010/?",
        "http://127.0.0.1:8010/base?x=1",
        "http://127.0.0.1:8010/a/../admin",
        "http://127.0.0.1:8010/a/%2e%2e/admin",
    ],
)
async def test_refused_urls(url):
    with pytest.raises(EndpointNotAllowed):
        await _policy(DEFAULT_ALLOWED).check(url)


async def test_token_urls_may_have_a_query_never_a_fragment():
    policy = _policy("127.0.0.0/8")
    await policy.check("http://127.0.0.1/token?tenant=a", fixed_path=False)
    with pytest.raises(EndpointNotAllowed, match="fragment"):
        await policy.check("http://127.0.0.1/token#", fixed_path=False)


async def test_names_resolve_and_every_address_must_pass():
    policy = _policy(DEFAULT_ALLOWED)
    await policy.check("http://loopback.test:8010/")
    await policy.check("https://internal.test/")
    await policy.check("https://127.0.0.1/")
    with pytest.raises(EndpointNotAllowed):  # one of its addresses is public
        await policy.check("http://mixed.test/")
    with pytest.raises(EndpointNotAllowed):  # loopback is not public
        await _policy("0.0.0.0/0").check("http://loopback.test/")


async def test_refusals_name_the_host_and_the_rule_never_the_addresses():
    egress = EndpointPolicy(
        parse_networks(DEFAULT_EGRESS), name="egress", setting="SEEDOS_EGRESS_ALLOWED_NETWORKS"
    ).using(resolver)
    with pytest.raises(EndpointNotAllowed) as caught:
        await egress.check("https://internal.test/token")
    assert caught.value.detail == (
        "host 'internal.test' is outside the egress networks (SEEDOS_EGRESS_ALLOWED_NETWORKS)"
    )
    with pytest.raises(EndpointNotAllowed) as caught:
        await _policy("10.0.0.0/8").check("http://0x7f.1:8010/")
    assert "'0x7f.1'" in caught.value.detail and "127.0.0.1" not in caught.value.detail


def test_call_urls_keep_the_contract_path():
    assert join("http://h:1", "/check") == "http://h:1/check"
    assert join("http://h:1/base/", "/check") == "http://h:1/base/check"
    assert join("http://h:1/base#", "/check") == "http://h:1/base/check"
    assert join("http://h:1/x?y=#", "/actions/a") == "http://h:1/x/actions/a"


def test_setting_is_validated(monkeypatch):
    monkeypatch.setenv("SEEDOS_ENDPOINT_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")
    with pytest.raises(ValueError, match=r"SEEDOS_ENDPOINT_ALLOWED_NETWORKS|does not appear"):
        CommonSettings()
    monkeypatch.setenv("SEEDOS_ENDPOINT_ALLOWED_NETWORKS", "10.0.0.0/8, 0.0.0.0/0")
    assert len(CommonSettings().endpoint_policy().allowed) == 2
    monkeypatch.setenv("SEEDOS_EGRESS_ALLOWED_NETWORKS", "0.0.0.0/0,nope")
    with pytest.raises(ValueError, match=r"SEEDOS_EGRESS_ALLOWED_NETWORKS|does not appear"):
        CommonSettings()


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "::a9fe:a9fe",  # IPv4-compatible
        "2002:a9fe:a9fe::1",  # 6to4
        "::ffff:a9fe:a9fe",  # IPv4-mapped
        "168.63.129.16",  # Azure host agent
        "192.0.0.192",  # Oracle Cloud metadata
    ],
)
def test_metadata_in_disguise_is_refused_under_everything(address):
    assert not _allowed("0.0.0.0/0,::/0", address)


def test_embedded_ipv4_is_judged_as_itself():
    assert _allowed("10.0.0.0/8", "64:ff9b::a00:1")  # NAT64 of 10.0.0.1
    assert not _allowed("::/0", "64:ff9b::808:808")  # 8.8.8.8: only IPv6 was allowed
    assert not _allowed("0.0.0.0/0,::/0", "::ffff:127.0.0.1")
    # link-local /16 listed on purpose does not open the metadata address inside it
    assert _allowed("169.254.0.0/16", "169.254.10.1")
    assert not _allowed("169.254.0.0/16", "169.254.169.254")
    assert _allowed("169.254.169.254/32", "169.254.169.254")
