"""The allowed-address rule for connector endpoint URLs."""

from __future__ import annotations

import ipaddress

import pytest

from common.endpoints import DEFAULT_ALLOWED, EndpointNotAllowed, EndpointPolicy, parse_networks
from common.settings import CommonSettings


def _allowed(networks: str, address: str) -> bool:
    return EndpointPolicy(parse_networks(networks)).address_allowed(ipaddress.ip_address(address))


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
    ],
)
def test_default_networks(address, expected):
    assert _allowed(DEFAULT_ALLOWED, address) is expected


def test_broad_entries_do_not_reach_guarded_ranges():
    everything = "0.0.0.0/0,::/0"
    assert _allowed(everything, "8.8.8.8")
    assert not _allowed(everything, "169.254.169.254")
    assert not _allowed(everything, "fe80::1")
    # only an entry as narrow as the guarded range allows it, on purpose
    assert _allowed("169.254.169.254/32", "169.254.169.254")
    assert _allowed("169.254.0.0/16", "169.254.1.1")
    assert not _allowed("169.0.0.0/8", "169.254.1.1")


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
    ],
)
async def test_refused_urls(url):
    with pytest.raises(EndpointNotAllowed):
        await EndpointPolicy(parse_networks(DEFAULT_ALLOWED)).check(url)


async def test_names_resolve_and_every_address_must_pass():
    policy = EndpointPolicy(parse_networks(DEFAULT_ALLOWED))
    await policy.check("http://localhost:8010/")
    await policy.check("https://127.0.0.1/")
    with pytest.raises(EndpointNotAllowed):  # localhost is not public
        await EndpointPolicy(parse_networks("8.8.8.0/24")).check("http://localhost/")


def test_setting_is_validated(monkeypatch):
    monkeypatch.setenv("SEEDOS_ENDPOINT_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")
    with pytest.raises(ValueError, match=r"SEEDOS_ENDPOINT_ALLOWED_NETWORKS|does not appear"):
        CommonSettings()
    monkeypatch.setenv("SEEDOS_ENDPOINT_ALLOWED_NETWORKS", "10.0.0.0/8, 0.0.0.0/0")
    assert len(CommonSettings().endpoint_policy().allowed) == 2


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
    # link-local /16 listed on purpose does not open the metadata address inside it
    assert _allowed("169.254.0.0/16", "169.254.10.1")
    assert not _allowed("169.254.0.0/16", "169.254.169.254")
    assert _allowed("169.254.169.254/32", "169.254.169.254")
