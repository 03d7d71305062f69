"""What ``seedos keys generate`` and the signing-key rotation commands write: the secrets of a
fresh deployment as a ``.env`` file (the one docker-compose.yml reads), and the three steps of
rotating one service's internal signing key in such a file without downtime.

1. ``seedos keys add-signing-key SERVICE``: a new key pair; its public key joins
   ``SEEDOS_INTERNAL_PUBLIC_KEYS`` and its private key waits in ``<setting>_NEXT``, read by no
   service. Restart the services: they now accept both keys.
2. ``seedos keys promote-signing-key SERVICE``: the waiting key becomes the service's signing key.
   Restart that service: it signs with the new key.
3. ``seedos keys retire-signing-key KID``, once no token the old key signed can still be valid
   (the tokens' maximum lifetime after step 2; five minutes by default): the old public key
   leaves the list. Restart the services.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import dotenv
from joserfc.jwk import OKPKey

from common import service_keys
from common.crypto import KeyRing
from common.internal_auth import TokenSigner

IDEMPOTENCY_SETTING = "SEEDOS_IDEMPOTENCY_KEY"
NEXT = "_NEXT"


class KeyFileError(Exception):
    """The env file cannot be changed as asked."""


@dataclass(frozen=True)
class ServiceKeys:
    """A suite's internal-token keys in one place, for a stack one process starts (tests,
    benches): the services' environment, and signers minting tokens as a service would."""

    private: dict[str, OKPKey] = field(default_factory=dict)
    public: service_keys.PublicKeys = field(default_factory=lambda: service_keys.PublicKeys({}))
    idempotency_key: str = ""

    @classmethod
    def generate(cls) -> ServiceKeys:
        private, public = service_keys.generate_all()
        return cls(private=private, public=public, idempotency_key=secrets.token_urlsafe(48))

    def env(self) -> dict[str, str]:
        return {
            **{service_keys.signing_setting(name): service_keys.private_jwk(key)
               for name, key in self.private.items()},
            service_keys.PUBLIC_KEYS_SETTING: self.public.to_json(),
            IDEMPOTENCY_SETTING: self.idempotency_key,
        }  # fmt: skip

    def signer(self, issuer: str = "gateway", *, ttl: int = 60) -> TokenSigner:
        return TokenSigner(key=self.private[issuer], issuer=issuer, ttl_seconds=ttl)


def fresh_deployment() -> dict[str, str]:
    """Every secret a fresh deployment needs, by environment name."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(16),  # URL-safe: it goes into DATABASE_URL
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        **ServiceKeys.generate().env(),
        "SEEDOS_CREDENTIAL_KEYS": KeyRing.generate().to_json(),
    }


def dotenv_text(values: dict[str, str]) -> str:
    """``NAME='value'`` lines (the JSON values hold no single quote)."""
    assert not any("'" in value for value in values.values())
    return "".join(f"{name}='{value}'\n" for name, value in values.items())


def _read(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        raise KeyFileError(f"{path} does not exist: make one with `seedos keys generate`")
    return dotenv.dotenv_values(path)


def _public(values: dict[str, str | None], path: Path) -> service_keys.PublicKeys:
    value = values.get(service_keys.PUBLIC_KEYS_SETTING)
    if not value:
        raise KeyFileError(f"{path} has no {service_keys.PUBLIC_KEYS_SETTING}")
    return service_keys.PublicKeys.parse(value)


def _set(path: Path, name: str, value: str) -> None:
    dotenv.set_key(path, name, value, quote_mode="always")


def add_signing_key(path: Path, service: str) -> str:
    """Step 1: a new key for ``service``, published and waiting; its key id."""
    setting = service_keys.signing_setting(service)
    values = _read(path)
    public = _public(values, path)
    if values.get(setting + NEXT):
        raise KeyFileError(f"{setting}{NEXT} already waits: promote it before adding another")
    key = service_keys.generate(service)
    _set(path, service_keys.PUBLIC_KEYS_SETTING, public.with_key(service, key).to_json())
    _set(path, setting + NEXT, service_keys.private_jwk(key))
    return key.kid  # type: ignore[return-value]


def promote_signing_key(path: Path, service: str) -> tuple[str | None, str]:
    """Step 2: the waiting key becomes ``service``'s signing key; (old key id, new key id)."""
    setting = service_keys.signing_setting(service)
    values = _read(path)
    waiting = values.get(setting + NEXT)
    if not waiting:
        raise KeyFileError(f"no {setting}{NEXT} waits: run add-signing-key {service} first")
    new = service_keys.load_signing_key(waiting, service=service)
    if new.kid not in _public(values, path).kids():
        raise KeyFileError(f"key {new.kid} is not published: run add-signing-key again")
    old = values.get(setting)
    old_kid = service_keys.load_signing_key(old, service=service).kid if old else None
    _set(path, setting, waiting)
    dotenv.unset_key(path, setting + NEXT, quote_mode="always")
    return old_kid, new.kid  # type: ignore[return-value]


def retire_signing_key(path: Path, kid: str) -> None:
    """Step 3: ``kid``'s public key leaves the list; never a key a service still signs with."""
    values = _read(path)
    public = _public(values, path)
    if kid not in public.kids():
        raise KeyFileError(f"no key {kid} is published")
    for service in service_keys.SIGNING_SERVICES:
        setting = service_keys.signing_setting(service)
        for name in (setting, setting + NEXT):
            value = values.get(name)
            if value and service_keys.load_signing_key(value, service=service).kid == kid:
                raise KeyFileError(f"{name} is key {kid}: it cannot be retired")
    _set(path, service_keys.PUBLIC_KEYS_SETTING, public.without(kid).to_json())
