"""Where the credential key ring comes from, and where a rotated one is written.

In order: ``SEEDOS_CREDENTIAL_KEYS`` (the ring as JSON, e.g. from a secret manager; rotation
cannot write it back), ``SEEDOS_CREDENTIAL_KEY_FILE`` (a JSON file, mode 0600), and in
development mode the generated secrets file. Outside development mode one of the first two is
required.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from common import devsecrets
from common.crypto import KeyRing
from common.settings import CommonSettings, Environment

DEV_ENTRY = "credential_keys"  # its name in the development secrets file


class KeySourceError(RuntimeError):
    pass


@dataclass(frozen=True)
class KeySource:
    ring: KeyRing
    where: str  # "env", "file" or "dev"
    path: Path | None = None

    def save(self, ring: KeyRing, data_dir: Path) -> None:
        """Persist a rotated ring where this one came from."""
        if self.where == "env":
            raise KeySourceError(
                "the key ring comes from SEEDOS_CREDENTIAL_KEYS, which cannot be written:"
                " use SEEDOS_CREDENTIAL_KEY_FILE to rotate, or update the variable yourself"
            )
        if self.where == "file":
            assert self.path is not None
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(ring.to_json())
            os.replace(tmp, self.path)
        else:
            devsecrets.replace(data_dir, DEV_ENTRY, ring.to_json())


def load(
    settings: CommonSettings, *, keys: SecretStr | None = None, key_file: Path | None = None
) -> KeySource:
    if keys is not None:
        return KeySource(_parse(keys.get_secret_value(), "SEEDOS_CREDENTIAL_KEYS"), "env")
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise KeySourceError(f"cannot read SEEDOS_CREDENTIAL_KEY_FILE: {exc}") from None
        return KeySource(_parse(text, str(key_file)), "file", key_file)
    if settings.env is Environment.development:
        text = devsecrets.load_or_create(settings.data_dir)[DEV_ENTRY]
        return KeySource(_parse(text, "the development secrets file"), "dev")
    raise KeySourceError(
        "a credential key ring is required outside development mode:"
        " set SEEDOS_CREDENTIAL_KEYS or SEEDOS_CREDENTIAL_KEY_FILE"
    )


def _parse(text: str, where: str) -> KeyRing:
    try:
        return KeyRing.from_json(text)
    except ValueError as exc:
        raise KeySourceError(f"{where}: {exc}") from None
