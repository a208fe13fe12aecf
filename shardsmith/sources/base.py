"""What every source declares about itself, whatever its collection.

A source is one class (``sources/medical/<dataset>.py`` or ``sources/werewolf/<source>.py``) whose
class attributes are its facts; the registry refuses a class that leaves one out, so forgetting
a licence or the partitioning is an error at start-up, not a silent gap in the card or the graph.

Required facts:

``name``         the folder under ``raw/`` and the prefix of its assets (``[a-z0-9_]+``)
``collection``   the release it feeds (``medical``, ``werewolf``)
``licence``      the terms the data comes under, as the card prints them
``citation``     what users of a release must cite
``homepage``     where the dataset is downloaded
``layouts``      the native download layouts ``detect`` recognises, in words
``partitioned``  whether its assets are partitioned (hash buckets of a 2D source; games)

Optional: ``needs_asr`` (some items need speech recognition), ``gated`` (the terms forbid open
re-hosting: a published copy asks users to accept them), ``adapter_version`` (bump on any change
of output), ``vocabulary_files`` (CSV tables of this source's label mapping, for sources that
live outside this package).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

REQUIRED_FACTS = ("name", "collection", "licence", "citation", "homepage", "layouts", "partitioned")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Source:
    """Facts every source class declares (see the module docstring)."""

    name: ClassVar[str]
    collection: ClassVar[str]
    licence: ClassVar[str]
    citation: ClassVar[str]
    homepage: ClassVar[str]
    layouts: ClassVar[tuple[str, ...]]
    partitioned: ClassVar[bool]
    needs_asr: ClassVar[bool] = False
    gated: ClassVar[bool] = False
    adapter_version: ClassVar[str] = "1"
    vocabulary_files: ClassVar[tuple[Path, ...]] = ()

    def detect(self, root: Path) -> bool:
        """True if ``root`` holds this dataset in one of ``layouts``."""
        raise NotImplementedError

    @classmethod
    def missing_facts(cls) -> list[str]:
        """Required facts this class does not declare (or declares empty / of the wrong type)."""
        missing = []
        for fact in REQUIRED_FACTS:
            value = getattr(cls, fact, None)
            if fact == "partitioned":
                if not isinstance(value, bool):
                    missing.append(fact)
            elif fact == "layouts":
                if not value or not isinstance(value, tuple | list):
                    missing.append(fact)
            elif not isinstance(value, str) or not value.strip():
                missing.append(fact)
        name = getattr(cls, "name", "")
        if "name" not in missing and not _NAME.match(name):
            missing.append("name (must match [a-z][a-z0-9_]*)")
        return missing

    @classmethod
    def facts(cls) -> dict[str, Any]:
        """The declared facts as plain data (the card, the CLI and the UI print these)."""
        return {
            "name": cls.name, "collection": cls.collection, "licence": cls.licence,
            "citation": cls.citation, "homepage": cls.homepage, "layouts": list(cls.layouts),
            "partitioned": cls.partitioned, "needs_asr": cls.needs_asr, "gated": cls.gated,
            "adapter_version": cls.adapter_version,
        }
