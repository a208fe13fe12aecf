"""Keyed pseudonyms for patient and study identifiers.

HMAC-SHA256 with a secret key: the same raw id always maps to the same pseudonym within a
deployment (so splits by patient stay stable), but without the key nobody can test a guessed
id against a release. The key is never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from shardsmith.config import KEY_ENV, demo_mode

# Used only when SHARDSMITH_DEMO is set: demo data holds no real patients.
_DEMO_KEY = b"shardsmith-demo-key-not-for-real-data"


class MissingKeyError(RuntimeError):
    pass


def pseudonym_key() -> bytes:
    key = os.environ.get(KEY_ENV)
    if key:
        return key.encode("utf-8")
    if demo_mode():
        return _DEMO_KEY
    raise MissingKeyError(
        f"{KEY_ENV} is not set. Patient ids are pseudonymised with a keyed hash; set a secret key "
        f"(or {'SHARDSMITH_DEMO'}=1 for demo data only)."
    )


def pseudonymise(raw_id: str | None, namespace: str, key: bytes | None = None) -> str | None:
    """Return a stable 20-hex-char pseudonym for ``raw_id`` within ``namespace`` (e.g. the source)."""
    if raw_id is None or str(raw_id).strip() == "":
        return None
    mac = hmac.new(key or pseudonym_key(), f"{namespace}\x1f{raw_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:20]


def stable_id(*parts: object) -> str:
    """Deterministic, unkeyed id for records (no secret involved: inputs are already pseudonyms or public)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:24]


def split_for(group_key: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train/val/test split by group (patient) so no patient spans two splits."""
    bucket = int(hashlib.sha256(group_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < fractions[0]:
        return "train"
    if bucket < fractions[0] + fractions[1]:
        return "val"
    return "test"
