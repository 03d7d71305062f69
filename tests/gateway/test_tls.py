"""The gateway's own HTTPS (python -m gateway.serve): TLS 1.3 only, HSTS, with the certificate
`seedos up --tls` makes; a wrong certificate or key stops the start with a clear message.

One gateway process for the module (the upstreams are not needed: only the gateway's own
routes are called), plus one start that is refused: about 4 s in all.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from gateway.browser import HSTS
from gateway.settings import GatewaySettings
from seedos_cli import tls as local_tls
from seedos_cli.supervisor import SERVICES, Supervisor
from tests.conftest import suite_env
from tests.support import free_port, make_tenant

GATEWAY = next(spec for spec in SERVICES if spec.name == "gateway")


@dataclass
class TlsGateway:
    url: str
    port: int
    cert: local_tls.LocalCertificate
    trust: ssl.SSLContext  # trusts the local CA, as `curl --cacert` would
    env: dict[str, str]


def _trust(cert: local_tls.LocalCertificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert.ca_file))


@pytest.fixture(scope="module")
def gateway(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    folder = tmp_path_factory.mktemp("tls")
    cert = local_tls.ensure(folder)
    ports = {name: free_port() for name in ("gateway", "connector_service", "marketplace_service")}
    url = f"https://127.0.0.1:{ports['gateway']}"
    env = suite_env(
        dsn, None, ports,
        SEEDOS_PUBLIC_URL=url,
        SEEDOS_GATEWAY_TLS_CERT_FILE=str(cert.cert_file),
        SEEDOS_GATEWAY_TLS_KEY_FILE=str(cert.key_file),
    )  # fmt: skip
    supervisor = Supervisor(env, log_path=folder / "gateway.log")
    supervisor.start(GATEWAY, ports["gateway"])
    try:
        supervisor.wait_ready({"gateway": url}, path="/healthz", verify=_trust(cert))
        yield TlsGateway(url, ports["gateway"], cert, _trust(cert), env)
    finally:
        supervisor.stop()


def _handshake(gateway: TlsGateway, version: ssl.TLSVersion) -> str | None:
    """The TLS version a client limited to ``version`` agrees with the gateway."""
    context = _trust(gateway.cert)
    context.minimum_version = context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version()


def test_a_tls_1_2_handshake_is_refused(gateway) -> None:
    # the server ends the handshake (OpenSSL reports an EOF or the protocol_version alert)
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(gateway, ssl.TLSVersion.TLSv1_2)
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)
    assert _handshake(gateway, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


async def test_tls_1_3_serves_the_api_with_hsts(gateway, dsn) -> None:
    tenant = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=gateway.url, verify=gateway.trust) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        me = await client.get("/api/v1/me", headers=tenant.headers)
        assert me.status_code == 200, me.text
        assert me.json()["tenant"]["slug"] == tenant.slug
        assert me.headers["strict-transport-security"] == HSTS.decode()
        # HSTS binds a host on every port: never sent for localhost (a browser would then send
        # each other development server there to https)
        local = await client.get("/healthz", headers={"host": f"localhost:{gateway.port}"})
        assert local.status_code == 200 and "strict-transport-security" not in local.headers


def test_no_plain_http_and_no_untrusted_certificate(gateway) -> None:
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no answer
        httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(gateway.url + "/healthz", timeout=5)  # the system's CAs do not know ours


def test_a_key_that_is_not_the_certificates_stops_the_start(gateway, tmp_path) -> None:
    other = local_tls.ensure(tmp_path)  # another CA and server key
    port = free_port()
    env = {**gateway.env, "SEEDOS_GATEWAY_TLS_KEY_FILE": str(other.key_file),
           "SEEDOS_PUBLIC_URL": f"https://127.0.0.1:{port}"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", GATEWAY.module, "--host", "127.0.0.1", "--port", str(port)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "the key in SEEDOS_GATEWAY_TLS_KEY_FILE is not the one of the certificate" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    key_pem = other.key_file.read_text().splitlines()[1]
    assert key_pem not in done.stderr + done.stdout  # nothing of the key is shown


@pytest.fixture
def settings_env(monkeypatch, tmp_path) -> local_tls.LocalCertificate:
    for name in list(os.environ):
        if name.startswith("SEEDOS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SEEDOS_ENV", "development")
    monkeypatch.setenv("SEEDOS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEEDOS_PUBLIC_URL", "https://127.0.0.1:8443")
    return local_tls.ensure(tmp_path)


@pytest.mark.parametrize(
    ("files", "public_url", "message"),
    [
        ({"CERT": "server.pem"}, None, "set both SEEDOS_GATEWAY_TLS_CERT_FILE and"),
        ({"CERT": "server.pem", "KEY": "nowhere.pem"}, None, "KEY_FILE: no such file"),
        ({"CERT": "server-key.pem", "KEY": "server-key.pem"}, None, "no PEM certificate"),
        ({"CERT": "server.pem", "KEY": "server.pem"}, None, "no PEM private key"),
        ({"CERT": "server.pem", "KEY": "server-key.pem"}, "http://127.0.0.1:8443", "must be https"),
    ],
)
def test_settings_refuse_tls_files_that_cannot_serve(
    settings_env, monkeypatch, files, public_url, message
) -> None:
    folder = settings_env.cert_file.parent
    for which, name in files.items():
        monkeypatch.setenv(f"SEEDOS_GATEWAY_TLS_{which}_FILE", str(folder / name))
    if public_url:
        monkeypatch.setenv("SEEDOS_PUBLIC_URL", public_url)
    with pytest.raises(ValueError, match=message):
        GatewaySettings()


def test_an_encrypted_key_needs_its_password(settings_env, monkeypatch) -> None:
    key = serialization.load_pem_private_key(settings_env.key_file.read_bytes(), None)
    encrypted = settings_env.key_file.with_name("encrypted-key.pem")
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    monkeypatch.setenv("SEEDOS_GATEWAY_TLS_CERT_FILE", str(settings_env.cert_file))
    monkeypatch.setenv("SEEDOS_GATEWAY_TLS_KEY_FILE", str(encrypted))
    with pytest.raises(ValueError, match="is encrypted: set SEEDOS_GATEWAY_TLS_KEY_PASSWORD"):
        GatewaySettings()
    monkeypatch.setenv("SEEDOS_GATEWAY_TLS_KEY_PASSWORD", "not-the-password-7f3a")
    with pytest.raises(ValueError, match="does not decrypt it") as refused:
        GatewaySettings()
    assert "not-the-password-7f3a" not in str(refused.value)
    monkeypatch.setenv("SEEDOS_GATEWAY_TLS_KEY_PASSWORD", "open sesame")
    context = GatewaySettings().tls_context()
    assert context is not None and context.minimum_version is ssl.TLSVersion.TLSv1_3


def test_the_local_certificate_names_loopback_and_is_kept_until_near_its_end(tmp_path) -> None:
    made = local_tls.ensure(tmp_path)
    ca = x509.load_pem_x509_certificate(made.ca_file.read_bytes())
    server = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    now = dt.datetime.now(dt.UTC)
    assert now < server.not_valid_after_utc <= now + dt.timedelta(days=398)
    for key in (made.key_file, made.ca_file.with_name("ca-key.pem")):
        assert key.stat().st_mode & 0o777 == 0o600
    ca_pem, server_pem = made.ca_file.read_bytes(), made.cert_file.read_bytes()

    local_tls.ensure(tmp_path)  # valid: kept as it is
    assert (made.ca_file.read_bytes(), made.cert_file.read_bytes()) == (ca_pem, server_pem)
    # within a week of its end: a new server certificate from the same CA, which stays trusted
    soon = server.not_valid_after_utc - dt.timedelta(days=6)
    local_tls.ensure(tmp_path, now=soon)
    renewed = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    assert made.ca_file.read_bytes() == ca_pem and renewed.serial_number != server.serial_number
    renewed.verify_directly_issued_by(ca)
    assert renewed.not_valid_after_utc > server.not_valid_after_utc
    # a damaged key: made again
    made.key_file.write_text("not a key")
    local_tls.ensure(tmp_path, now=soon)
    assert Path(made.key_file).read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_the_local_authority_vouches_for_loopback_only(tmp_path) -> None:
    """Trusting the local CA exposes a browser to no other site, even if its key leaks: a
    certificate it signs for any other name fails verification (RFC 5280 name constraints)."""
    made = local_tls.ensure(tmp_path)
    ca = x509.load_pem_x509_certificate(made.ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(
        made.ca_file.with_name("ca-key.pem").read_bytes(), password=None
    )
    store = verification.Store([ca])
    now = dt.datetime.now(dt.UTC)
    verifier = verification.PolicyBuilder().store(store).time(now)
    own = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    verifier.build_server_verifier(x509.DNSName("localhost")).verify(own, [])

    def leaf(name: str) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip

    with pytest.raises(verification.VerificationError):
        verifier.build_server_verifier(x509.DNSName("bank.example")).verify(
            leaf("bank.example"), []
        )
    # an authority made before the constraint existed is replaced on the next start
    unconstrained = (
        x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    made.ca_file.write_bytes(unconstrained.public_bytes(serialization.Encoding.PEM))
    local_tls.ensure(tmp_path)
    again = x509.load_pem_x509_certificate(made.ca_file.read_bytes())
    assert again.extensions.get_extension_for_class(x509.NameConstraints).critical
