"""The gateway's own HTTPS: a server context that speaks TLS 1.3 only.

TLS 1.3 alone has forward secrecy and AEAD cipher suites only, so OpenSSL's defaults need no
tuning; a client that can go no higher than TLS 1.2 fails the handshake (``protocol version``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

CERT_SETTING = "SEEDOS_GATEWAY_TLS_CERT_FILE"
KEY_SETTING = "SEEDOS_GATEWAY_TLS_KEY_FILE"
PASSWORD_SETTING = "SEEDOS_GATEWAY_TLS_KEY_PASSWORD"  # noqa: S105 (a name)


def server_context(
    *, cert_file: Path, key_file: Path, password: str | None = None
) -> ssl.SSLContext:
    """A TLS 1.3-only server context with the certificate (chain) and key of these PEM files.

    Raises ValueError with a message naming the setting at fault (OpenSSL's own says only
    "PEM lib"): a file missing or unreadable, not PEM, an encrypted key without its password
    or with a wrong one, or a key that is not the certificate's."""
    _check(cert_file=cert_file, key_file=key_file, password=password)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        # a callable, so that OpenSSL never asks a terminal for a password
        context.load_cert_chain(cert_file, key_file, password=lambda: password or "")
    except ssl.SSLError as exc:  # what _check did not foresee
        raise ValueError(f"{CERT_SETTING}, {KEY_SETTING}: OpenSSL refuses them ({exc})") from None
    return context


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{setting}: no such file: {path}") from None
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror}") from None


def _check(*, cert_file: Path, key_file: Path, password: str | None) -> None:
    cert_pem, key_pem = _read(CERT_SETTING, cert_file), _read(KEY_SETTING, key_file)
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]  # the server's, then its chain
    except ValueError:
        raise ValueError(f"{CERT_SETTING}: no PEM certificate in {cert_file}") from None
    try:
        key = serialization.load_pem_private_key(
            key_pem, password=password.encode() if password is not None else None
        )
    except TypeError:  # encrypted without a password, or a password for a plain key
        if password is None:
            raise ValueError(f"{KEY_SETTING} is encrypted: set {PASSWORD_SETTING}") from None
        raise ValueError(f"{PASSWORD_SETTING} is set but {KEY_SETTING} is not encrypted") from None
    except ValueError:
        wrong = f", or {PASSWORD_SETTING} does not decrypt it" if password is not None else ""
        raise ValueError(f"{KEY_SETTING}: no PEM private key in {key_file}{wrong}") from None
    if key.public_key() != leaf.public_key():
        raise ValueError(
            f"the key in {KEY_SETTING} is not the one of the certificate in {CERT_SETTING}"
        )
