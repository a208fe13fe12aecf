"""Asset keys, named in one place.

Every asset of the graph is named by a function here and described by :func:`describe`, which
looks a key up in a table built from the registry instead of parsing it back (source names contain
underscores, so ``rsplit("_")`` cannot tell a source from its stage). Plain strings: the Dagster
layer wraps them in ``AssetKey``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

CATALOG = "catalog"
RECORDS = "records"
RELEASE = "release"
GAMES = "werewolf_games"
UTTERANCES = "werewolf_utterances"
WEREWOLF = "werewolf"
MEDICAL = "medical"


def catalog(source: str) -> str:
    """``<source>_catalog``: label files joined with the images on disk."""
    return f"{source}_{CATALOG}"


def records(source: str) -> str:
    """``<source>_records``: decoded, harmonised records (partitioned for large 2-D sources)."""
    return f"{source}_{RECORDS}"


def release(collection: str) -> str:
    """``<collection>_release``: the published release of a collection."""
    return f"{collection}_{RELEASE}"


def source_keys(source: str) -> list[str]:
    """The staging assets of one medical source, in build order."""
    return [catalog(source), records(source)]


def build_keys(medical: list[str], games: list[str]) -> list[str]:
    """Every asset a build of these medical and game sources covers, in build order."""
    names = [k for name in medical for k in source_keys(name)]
    if medical:
        names.append(release(MEDICAL))
    if games:
        names += [GAMES, UTTERANCES, release(WEREWOLF)]
    return names


# The stages whose steps run Great Expectations: a records step's blocking suite check and a
# release's validation. A catalog or a game step never imports GX.
VALIDATING_STAGES = frozenset({RECORDS, RELEASE})


def validates(names: list[str]) -> bool:
    """Whether building ``names`` runs any GX suite (then the driver starts GX early, off this core)."""
    return any(describe(n).stage in VALIDATING_STAGES for n in names)


@dataclass(frozen=True)
class KeyInfo:
    """What an asset key stands for: its stage, the source it stages (if any), its collection."""

    key: str
    stage: str
    collection: str
    source: str | None = None


@cache
def _table() -> dict[str, KeyInfo]:
    from shardsmith.sources.registry import COLLECTIONS, medical_source_names

    out = {release(c): KeyInfo(release(c), RELEASE, c) for c in COLLECTIONS}
    for name in medical_source_names():
        out[catalog(name)] = KeyInfo(catalog(name), CATALOG, MEDICAL, name)
        out[records(name)] = KeyInfo(records(name), RECORDS, MEDICAL, name)
    out[GAMES] = KeyInfo(GAMES, GAMES, WEREWOLF)
    out[UTTERANCES] = KeyInfo(UTTERANCES, UTTERANCES, WEREWOLF)
    return out


def describe(key: str) -> KeyInfo:
    """The :class:`KeyInfo` of ``key`` (a KeyError names the unknown key)."""
    try:
        return _table()[key]
    except KeyError:
        raise KeyError(f"unknown asset key {key!r}") from None


def refresh() -> None:
    """Forget the table (tests that register a source at run time)."""
    _table.cache_clear()
