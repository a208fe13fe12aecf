"""Keyed pseudonyms for patient and study identifiers.

HMAC-SHA256 with a secret key: the same raw id always maps to the same pseudonym within a
deployment (so splits by patient stay stable), but without the key nobody can test a guessed
id against a release. The key is never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac

from shardsmith import config


class MissingKeyError(RuntimeError):
    pass


# Set in worker processes from the job the parent sends: a worker must use the parent's key, not
# whatever its (long-lived, forked-earlier) process environment held.
_PROCESS_KEY: bytes | None = None


def use_key(key: bytes | None) -> None:
    """Make ``key`` this process's pseudonym key (worker processes of the staging runner)."""
    global _PROCESS_KEY
    _PROCESS_KEY = key


def pseudonym_key() -> bytes:
    """The configured secret (``config.pseudonym_key``); a clear error when there is none."""
    key = _PROCESS_KEY or config.pseudonym_key()
    if key:
        return key
    raise MissingKeyError(
        f"{config.KEY_ENV} is not set. Patient ids are pseudonymised with a keyed hash; set a secret key "
        f"(or {config.DEMO_ENV}=1 for demo data only)."
    )


def key_tag() -> str:
    """A keyed tag of the key (never the key): pseudonyms depend on the key, so a key change must
    change every data version. A missing key is an error here too, not a silent "nokey" tag."""
    return hmac.new(pseudonym_key(), b"shardsmith-data-version", hashlib.sha256).hexdigest()[:16]


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


# Seeded split fractions per pool, as data: "all" draws train/val/test; "trainval" draws only train
# or val, for images the dataset puts in its training set but not in a test set (NIH's
# train_val_list.txt, MSD's imagesTr): the official test/non-test line is kept, the val cut is ours.
SPLIT_POOLS: dict[str, tuple[float, float]] = {"all": (0.8, 0.1), "trainval": (0.875, 0.125)}


def _split_of(bucket: float, fractions: tuple[float, float]) -> str:
    if bucket < fractions[0]:
        return "train"
    if bucket < fractions[0] + fractions[1]:
        return "val"
    return "test"


def split_for(group_key: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train/val/test split by group (a public key: a Werewolf game id)."""
    bucket = int(hashlib.sha256(group_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return _split_of(bucket, fractions)


def seeded_split(seed: str, namespace: str, native_key: str, pool: str = "all") -> str:
    """The split of a patient (or group) from the PUBLIC split seed and its native id, not its
    keyed pseudonym: the same raw files give the same splits under any pseudonym key.

    ``namespace`` is the source (or "group"); ``pool`` names a row of ``SPLIT_POOLS``. The bucket is
    in [0, 1), so a pool whose fractions sum to 1 never draws test."""
    if pool not in SPLIT_POOLS:
        raise ValueError(f"unknown split pool {pool!r}; expected one of {sorted(SPLIT_POOLS)}")
    digest = hashlib.sha256(f"{seed}\x1f{namespace}\x1f{native_key}".encode()).digest()
    bucket = (int.from_bytes(digest[:8], "big") >> 11) / 2**53  # 53 bits: exact in a float, < 1
    return _split_of(bucket, SPLIT_POOLS[pool])
