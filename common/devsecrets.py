"""Development-mode secrets: generated once into a git-ignored file (mode 0600), then reused.

Never regenerated over an existing file, because data encrypted or signed with the old values
(credentials, later) would become unreadable.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path

FILE_NAME = "secrets.json"
KNOWN_WEAK = frozenset({"changeme", "secret", "development", "dev"})


# Every secret the suite needs in development, with how to make one.
def _new_keyring() -> str:
    from common.crypto import KeyRing  # here: devsecrets is imported by settings, crypto is not

    return KeyRing.generate().to_json()


def _new_signing_keys() -> str:
    from common import service_keys

    private, _public = service_keys.generate_all()
    return json.dumps({name: service_keys.private_jwk(key) for name, key in private.items()})


def signing_keys(generated: dict[str, str]) -> dict[str, str]:
    """Each signing service's private JWK (JSON), from what :func:`load_or_create` gave."""
    return json.loads(generated["internal_signing_keys"])


_GENERATORS = {
    "internal_signing_keys": _new_signing_keys,
    "idempotency_key": lambda: secrets.token_urlsafe(48),
    "demo_crm_api_key": lambda: "demo-crm-" + secrets.token_urlsafe(18),
    "credential_keys": _new_keyring,
}


def load_or_create(data_dir: Path) -> dict[str, str]:
    """Return the development secrets, creating the file or missing entries once."""
    return _update(data_dir, {})


def replace(data_dir: Path, name: str, value: str) -> None:
    """Store a new value for one secret (key rotation keeps the old keys inside the value)."""
    _update(data_dir, {name: value})


def _update(data_dir: Path, changes: dict[str, str]) -> dict[str, str]:
    path = Path(data_dir) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # Services starting together must agree on one value: serialise with a lock.
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current: dict[str, str] = {}
        if path.exists():
            current = json.loads(path.read_text())
        missing = {name: make() for name, make in _GENERATORS.items() if name not in current}
        if missing or changes:
            current |= missing | changes
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(current, fh, indent=2)
            os.replace(tmp, path)
        os.chmod(path, 0o600)
    return current
