"""Envelope encryption of credentials (AES-256-GCM, per-secret data keys, a KEK ring)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from common.crypto import DecryptionError, KeyRing, associated_data

T1, T2 = uuid.uuid4(), uuid.uuid4()
C1, C2 = uuid.uuid4(), uuid.uuid4()


def test_round_trip_and_every_envelope_is_fresh():
    ring = KeyRing.generate()
    aad = associated_data(T1, C1, "api_key")
    a = ring.encrypt(b"s3cret", aad=aad)
    b = ring.encrypt(b"s3cret", aad=aad)
    assert ring.decrypt(a, aad=aad) == b"s3cret"
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key and a.nonce != b.nonce
    assert b"s3cret" not in a.ciphertext + a.wrapped_key


@pytest.mark.parametrize(
    "other",
    [associated_data(T2, C1, "api_key"), associated_data(T1, C2, "api_key"),
     associated_data(T1, C1, "password")],
    ids=["other-tenant", "other-connector", "other-field"],
)  # fmt: skip
def test_an_envelope_only_decrypts_in_its_own_row(other):
    ring = KeyRing.generate()
    env = ring.encrypt(b"s3cret", aad=associated_data(T1, C1, "api_key"))
    with pytest.raises(DecryptionError):
        ring.decrypt(env, aad=other)


def test_tampering_and_unknown_keys_are_refused():
    ring = KeyRing.generate()
    aad = associated_data(T1, C1, "api_key")
    env = ring.encrypt(b"s3cret", aad=aad)
    flipped = bytes([env.ciphertext[0] ^ 1]) + env.ciphertext[1:]
    with pytest.raises(DecryptionError):
        ring.decrypt(dataclasses.replace(env, ciphertext=flipped), aad=aad)
    with pytest.raises(DecryptionError, match="not in the key ring"):
        KeyRing.generate().decrypt(env, aad=aad)


def test_rotation_keeps_old_envelopes_readable_and_rewraps_them():
    ring = KeyRing.generate()
    aad = associated_data(T1, C1, "token")
    old = ring.encrypt(b"refresh-me", aad=aad)
    rotated = KeyRing.from_json(ring.rotated().to_json())
    assert rotated.primary != ring.primary and set(ring.key_ids) < set(rotated.key_ids)
    assert rotated.decrypt(old, aad=aad) == b"refresh-me"  # before re-wrapping
    new = rotated.rewrap(old, aad=aad)
    assert new.key_id == rotated.primary and new.ciphertext == old.ciphertext
    assert rotated.decrypt(new, aad=aad) == b"refresh-me"
    assert rotated.rewrap(new, aad=aad) is new


@pytest.mark.parametrize(
    "text",
    ["", "{}", '{"primary": "a", "keys": {"a": "c2hvcnQ="}}', '{"primary": "b", "keys": {}}',
     '{"primary": "a", "keys": {"a": "***"}}'],
)  # fmt: skip
def test_malformed_key_rings_are_refused(text):
    with pytest.raises(ValueError):
        KeyRing.from_json(text)
