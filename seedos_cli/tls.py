"""A local certificate for ``seedos up --tls``: a small certificate authority made for this
machine, and a server certificate it signs for localhost, 127.0.0.1 and ::1.

A browser (or ``curl --cacert``) trusts the authority once; the server certificate is
reissued under the same authority when it nears its end, so that trust lasts. Everything lives
in ``<data dir>/tls/``; the private keys are readable by their owner only (0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOSTNAMES = ("localhost",)
ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
CA_DAYS = 10 * 365
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=7)  # a certificate this close to its end is made again
_BACKDATE = dt.timedelta(minutes=5)  # clocks a little behind still accept it
# The authority can vouch for this machine's loopback names only: a browser that trusts it is
# not exposed to any other site, should its key ever leak (a backup, a shared data folder).
_LOOPBACK_ONLY = x509.NameConstraints(
    permitted_subtrees=[
        *(x509.DNSName(name) for name in HOSTNAMES),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ],
    excluded_subtrees=None,
)


@dataclass(frozen=True)
class LocalCertificate:
    ca_file: Path  # the authority to trust (public)
    cert_file: Path  # the server's certificate
    key_file: Path  # the server's private key (0600)


def ensure(data_dir: Path, *, now: dt.datetime | None = None) -> LocalCertificate:
    """The local authority and server certificate in ``data_dir/tls``: kept while valid for
    more than a week, otherwise (or if missing or damaged) made again."""
    now = now or dt.datetime.now(dt.UTC)
    folder = Path(data_dir) / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    paths = LocalCertificate(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    ca_key_file = folder / "ca-key.pem"
    ca = _load_ca(paths.ca_file, ca_key_file, now=now)
    if ca is None:
        ca = _new_ca(now)
        _write(ca_key_file, _key_pem(ca[1]), private=True)
        _write(paths.ca_file, ca[0].public_bytes(serialization.Encoding.PEM))
    elif _server_valid(paths, ca[0], now=now):
        return paths
    cert, key = _new_server(ca, now)
    _write(paths.key_file, _key_pem(key), private=True)
    _write(paths.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _load_ca(
    cert_file: Path, key_file: Path, *, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    try:  # an authority made before it was limited to loopback is made again
        limited = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return (cert, key) if _fresh(cert, now) and limited == _LOOPBACK_ONLY else None


def _server_valid(paths: LocalCertificate, ca: x509.Certificate, *, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
        key = serialization.load_pem_private_key(paths.key_file.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return key.public_key() == cert.public_key() and _fresh(cert, now)


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    # a name of its own per machine, so two local authorities are never confused
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SEED-OS development"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"SEED-OS local CA {secrets.token_hex(4)}"),
    ])  # fmt: skip
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, key.public_key(), now, days=CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(_LOOPBACK_ONLY, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAMES[0])])
    days = min(SERVER_DAYS, (ca_cert.not_valid_after_utc - now).days)  # within the authority's
    sans = [*map(x509.DNSName, HOSTNAMES), *map(x509.IPAddress, ADDRESSES)]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(name, ca_cert.subject, key.public_key(), now, days=days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime, *, days: int,
) -> x509.CertificateBuilder:  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, key_cert_sign=cert_sign, crl_sign=cert_sign,
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` whole (a reader never sees half a file); a private one is created 0600,
    never readable by others even for a moment."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
