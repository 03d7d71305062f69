"""The services' signing keys for internal tokens: Ed25519 key pairs, one per signing service.

A service's private key is a JWK (``{"kty": "OKP", "crv": "Ed25519", "d": ..., "x": ...,
"kid": ...}``) in its own setting (``SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY``,
``SEEDOS_MARKETPLACE_INTERNAL_SIGNING_KEY``) and nowhere else. What every service may read is
``SEEDOS_INTERNAL_PUBLIC_KEYS``: the public keys by issuer, ``{"gateway": {"keys": [...]},
...}``, each value a JWK Set (RFC 7517) holding no private member. A key id names its service
(``gateway-20261207-3f9a1c``), and a key belongs to the issuer it is listed under: a token whose
``iss`` is another issuer's is refused.

Rotation lists the new public key beside the old one first, then moves the signer to the new
key, and retires the old one once no token it signed can still be valid (README, "Internal
tokens").
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

# the services that sign internal tokens, and so have a private key
SIGNING_SERVICES = ("gateway", "marketplace_service")
# each signing service's settings prefix: SEEDOS_<PREFIX>_INTERNAL_SIGNING_KEY
SETTING_PREFIX = {"gateway": "GATEWAY", "marketplace_service": "MARKETPLACE"}
PUBLIC_KEYS_SETTING = "SEEDOS_INTERNAL_PUBLIC_KEYS"
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


class KeyProblem(ValueError):  # a ValueError: pydantic reports it as the setting's error
    """A key or key set that cannot be used."""


def signing_setting(service: str) -> str:
    return f"SEEDOS_{SETTING_PREFIX[service]}_INTERNAL_SIGNING_KEY"


def generate(service: str, *, today: datetime.date | None = None) -> OKPKey:
    """A new Ed25519 key pair for ``service``, with a key id naming the service and the day."""
    day = (today or datetime.datetime.now(datetime.UTC).date()).strftime("%Y%m%d")
    kid = f"{service}-{day}-{secrets.token_hex(3)}"
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})


def private_jwk(key: OKPKey) -> str:
    return json.dumps(key.as_dict(private=True), separators=(",", ":"))


def public_jwk(key: OKPKey) -> dict[str, str]:
    return key.as_dict(private=False)


def load_signing_key(value: str, *, service: str) -> OKPKey:
    """A service's private signing key from its JWK JSON."""
    try:
        data = json.loads(value)
        key = OKPKey.import_key(data)
    except (ValueError, TypeError, JoseError) as exc:
        raise KeyProblem(
            f"{signing_setting(service)} is not an Ed25519 private JWK ({exc})"
        ) from None
    if data.get("crv") != "Ed25519" or "d" not in data or not data.get("kid"):
        raise KeyProblem(f"{signing_setting(service)} must be an Ed25519 private JWK with a kid")
    return key


@dataclass(frozen=True)
class PublicKeys:
    """Every service's public keys, by issuer and key id."""

    by_issuer: Mapping[str, Mapping[str, OKPKey]]

    def issuer_of(self, kid: str) -> str | None:
        for issuer, keys in self.by_issuer.items():
            if kid in keys:
                return issuer
        return None

    def kids(self) -> set[str]:
        return {kid for keys in self.by_issuer.values() for kid in keys}

    def to_json(self) -> str:
        return json.dumps(
            {issuer: {"keys": [public_jwk(k) for k in keys.values()]}
             for issuer, keys in self.by_issuer.items()},
            separators=(",", ":"),
        )  # fmt: skip

    def with_key(self, issuer: str, key: OKPKey) -> PublicKeys:
        keys = {**self.by_issuer.get(issuer, {}), key.kid: _public(key)}
        return PublicKeys({**self.by_issuer, issuer: keys})

    def without(self, kid: str) -> PublicKeys:
        return PublicKeys(
            {issuer: {k: v for k, v in keys.items() if k != kid}
             for issuer, keys in self.by_issuer.items()}
        )  # fmt: skip

    @classmethod
    def of(cls, keys: Mapping[str, Iterable[OKPKey]]) -> PublicKeys:
        return cls({issuer: {k.kid: _public(k) for k in ks} for issuer, ks in keys.items()})

    @classmethod
    def parse(cls, value: str) -> PublicKeys:
        """``SEEDOS_INTERNAL_PUBLIC_KEYS``: public Ed25519 JWKs only, key ids unique."""
        try:
            document = json.loads(value)
        except ValueError:
            raise KeyProblem(f"{PUBLIC_KEYS_SETTING} is not JSON") from None
        if not isinstance(document, dict):
            raise KeyProblem(
                f'{PUBLIC_KEYS_SETTING} is an object: {{"gateway": {{"keys": [...]}}}}'
            )
        by_issuer: dict[str, dict[str, OKPKey]] = {}
        seen: set[str] = set()
        for issuer, jwks in document.items():
            entries = jwks.get("keys") if isinstance(jwks, dict) else None
            if not isinstance(entries, list):
                raise KeyProblem(f"{PUBLIC_KEYS_SETTING}: {issuer!r} must be a JWK Set")
            keys: dict[str, OKPKey] = {}
            for entry in entries:
                keys_of = _public_entry(entry, issuer=issuer)
                if keys_of.kid in seen:
                    raise KeyProblem(
                        f"{PUBLIC_KEYS_SETTING}: key id {keys_of.kid!r} is listed twice"
                    )
                seen.add(keys_of.kid)
                keys[keys_of.kid] = keys_of
            by_issuer[issuer] = keys
        return cls(by_issuer)


def _public(key: OKPKey) -> OKPKey:
    return OKPKey.import_key(key.as_dict(private=False))


def _public_entry(entry: object, *, issuer: str) -> OKPKey:
    if not isinstance(entry, dict):
        raise KeyProblem(f"{PUBLIC_KEYS_SETTING}: {issuer}'s keys are JWK objects")
    if _PRIVATE_MEMBERS & entry.keys():
        raise KeyProblem(
            f"{PUBLIC_KEYS_SETTING}: {issuer} lists a private key: publish public keys only"
        )
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not entry.get("kid"):
        raise KeyProblem(f"{PUBLIC_KEYS_SETTING}: {issuer}'s keys are Ed25519 JWKs with a kid")
    try:
        return OKPKey.import_key(entry)
    except (ValueError, TypeError, JoseError) as exc:
        raise KeyProblem(f"{PUBLIC_KEYS_SETTING}: {issuer}'s key {entry['kid']}: {exc}") from None


def generate_all() -> tuple[dict[str, OKPKey], PublicKeys]:
    """A fresh key pair for every signing service, and the public keys of them all."""
    private = {service: generate(service) for service in SIGNING_SERVICES}
    return private, PublicKeys.of({service: [key] for service, key in private.items()})
