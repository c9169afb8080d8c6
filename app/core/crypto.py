"""Encryption at rest for values the app keeps, keyed by SECRET_KEY.

Fernet (pyca/cryptography: AES-128-CBC with an HMAC-SHA256 tag) rather than anything
home-made: it authenticates as well as encrypts, so a value sealed under another key, or
altered in the database, is refused instead of decrypting into garbage.

SECRET_KEY is never the Fernet key itself: HKDF-SHA256 derives one key per purpose (its
`info`), so a key derived for one kind of value opens nothing sealed for another, and
SECRET_KEY can go on being used for other things without those uses sharing a key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Marks a sealed value, so a plain value written before encryption existed (or by hand) is
# told apart from a sealed one without trying to decrypt it; the version names the scheme
# (HKDF-SHA256 + Fernet) should it ever change.
SEALED_PREFIX = "v1:"


class UnreadableSecret(Exception):
    """A sealed value this key cannot open: it was sealed under another SECRET_KEY, or it
    was changed after sealing. The message never holds the value."""


class SecretBox:
    """Seals strings for storage and opens them again, with a key derived from `secret`
    for one `purpose` (a fixed, versioned byte string naming what is sealed)."""

    def __init__(self, secret: str, *, purpose: bytes) -> None:
        if not secret:
            raise ValueError("an empty secret cannot key a SecretBox")
        if not purpose:
            raise ValueError("a SecretBox needs a purpose, so that keys are not shared")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return stored.startswith(SEALED_PREFIX)

    def seal(self, plain: str) -> str:
        return SEALED_PREFIX + self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if not self.is_sealed(stored):
            raise UnreadableSecret(f"value is not sealed (no {SEALED_PREFIX!r} prefix)")
        try:
            plain = self._fernet.decrypt(stored[len(SEALED_PREFIX) :])
        except (InvalidToken, ValueError):
            # ValueError: characters outside base64 never reach Fernet's own check.
            raise UnreadableSecret(
                "sealed value cannot be opened with this key (another SECRET_KEY, or altered)"
            ) from None
        return plain.decode("utf-8")
