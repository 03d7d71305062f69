"""Envelope encryption of credentials at rest: AES-256-GCM with the ``cryptography`` package.

Each secret gets its own random data key; the data key is wrapped by a key-encryption key (KEK)
from a key ring, and the KEK's id is stored with the envelope. Associated data binds both the
ciphertext and the wrapped data key to the secret's tenant, connector and field, so an envelope
copied into another row does not decrypt. Rotation adds a KEK, makes it primary and re-wraps
data keys; envelopes wrapped by an older KEK decrypt as long as the ring still holds it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The envelope does not decrypt: unknown key, tampered data, or another row's envelope."""


@dataclass(frozen=True)
class Envelope:
    key_id: str
    wrapped_key: bytes  # wrap nonce + AES-GCM(KEK, data key)
    nonce: bytes
    ciphertext: bytes  # AES-GCM(data key, secret), tag included


def associated_data(tenant_id: uuid.UUID | str, connector_id: uuid.UUID | str, field: str) -> bytes:
    return f"seedos-credential|{tenant_id}|{connector_id}|{field}".encode()


class KeyRing:
    """Key-encryption keys by id, one of them primary (used for new envelopes)."""

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise ValueError("the primary key id is not in the key ring")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} is not {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self.primary = primary

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = _new_id()
        return cls({key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """``{"primary": "<id>", "keys": {"<id>": "<base64 of 32 bytes>", ...}}``"""
        try:
            data = json.loads(text)
            keys = {k: base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            return cls(keys, data["primary"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a credential key ring: {exc}") from None

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode() for k, v in self._keys.items()}
        return json.dumps({"primary": self.primary, "keys": keys})

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def rotated(self) -> KeyRing:
        """A ring with a new primary key, keeping every old one for decryption."""
        key_id = _new_id()
        return KeyRing({**self._keys, key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> Envelope:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return Envelope(self.primary, self._wrap(self.primary, data_key, aad), nonce, ciphertext)

    def decrypt(self, envelope: Envelope, *, aad: bytes) -> bytes:
        data_key = self._unwrap(envelope, aad)
        try:
            return AESGCM(data_key).decrypt(envelope.nonce, envelope.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("the ciphertext does not match this row") from None

    def rewrap(self, envelope: Envelope, *, aad: bytes) -> Envelope:
        """The same secret with its data key wrapped by the primary key (ciphertext unchanged)."""
        if envelope.key_id == self.primary:
            return envelope
        data_key = self._unwrap(envelope, aad)
        return Envelope(
            self.primary,
            self._wrap(self.primary, data_key, aad),
            envelope.nonce,
            envelope.ciphertext,
        )

    def _wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._keys[key_id]).encrypt(nonce, data_key, _wrap_aad(key_id, aad))

    def _unwrap(self, envelope: Envelope, aad: bytes) -> bytes:
        kek = self._keys.get(envelope.key_id)
        if kek is None:
            raise DecryptionError(f"key {envelope.key_id!r} is not in the key ring")
        nonce, wrapped = envelope.wrapped_key[:NONCE_BYTES], envelope.wrapped_key[NONCE_BYTES:]
        try:
            return AESGCM(kek).decrypt(nonce, wrapped, _wrap_aad(envelope.key_id, aad))
        except InvalidTag:
            raise DecryptionError("the data key does not unwrap for this row") from None


def _wrap_aad(key_id: str, aad: bytes) -> bytes:
    return b"seedos-data-key|" + key_id.encode() + b"|" + aad


def _new_id() -> str:
    return "k" + secrets.token_hex(6)
