"""What each published table looks like in a release: its schema, its media columns, its key.

Media columns become WebDataset members (``<key>.<ext>``); every other column goes into the
sample's ``.json``. A struct media column is ``{bytes, path}`` (the Hugging Face Image/Audio
convention); a binary column is stored as is.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema_ref: str  # "module:ATTRIBUTE", resolved lazily so optional families stay optional
    key_column: str
    media: dict[str, str] = field(default_factory=dict)  # column -> WebDataset extension
    split_column: str | None = "split"
    version_ref: str = ""

    @property
    def schema(self) -> pa.Schema:
        module, attr = self.schema_ref.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def schema_version(self) -> str:
        if not self.version_ref:
            return ""
        module, attr = self.version_ref.split(":")
        return getattr(importlib.import_module(module), attr)


TABLES: dict[str, TableSpec] = {
    "records": TableSpec(
        "records", "shardsmith.schemas.records:RECORDS_SCHEMA", "record_id", {"image": "png"},
        version_ref="shardsmith.schemas.records:RECORDS_SCHEMA_VERSION",
    ),
    "volumes": TableSpec(
        "volumes", "shardsmith.schemas.volumes:VOLUMES_SCHEMA", "record_id",
        {"image_npy": "image.npy", "label_npy": "label.npy"},
        version_ref="shardsmith.schemas.volumes:VOLUMES_SCHEMA_VERSION",
    ),
    "games": TableSpec(
        "games", "shardsmith.schemas.werewolf:GAMES_SCHEMA", "game_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    "utterances": TableSpec(
        "utterances", "shardsmith.schemas.werewolf:UTTERANCES_SCHEMA", "utterance_id", {"audio": "flac"},
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    "votes": TableSpec(
        "votes", "shardsmith.schemas.werewolf:VOTES_SCHEMA", "vote_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    "decisions": TableSpec(
        "decisions", "shardsmith.schemas.werewolf:DECISIONS_SCHEMA", "decision_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    "role_inference": TableSpec(
        "role_inference", "shardsmith.schemas.werewolf:ROLE_INFERENCE_SCHEMA", "item_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    # Cross-source identity (issue 13; shardsmith.identity): one row per record in a duplicate group.
    "duplicates": TableSpec(
        "duplicates", "shardsmith.schemas.duplicates:DUPLICATES_SCHEMA", "record_id",
        version_ref="shardsmith.schemas.duplicates:DUPLICATES_SCHEMA_VERSION",
    ),
    # Task views derived from records at release time (issue 14; shardsmith.views).
    "grounding": TableSpec(
        "grounding", "shardsmith.schemas.views:GROUNDING_SCHEMA", "grounding_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION",
    ),
    "consensus": TableSpec(
        "consensus", "shardsmith.schemas.views:CONSENSUS_SCHEMA", "consensus_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION",
    ),
    "dialogues": TableSpec(
        "dialogues", "shardsmith.schemas.views:DIALOGUES_SCHEMA", "turn_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION",
    ),
}

COLLECTION_TABLES: dict[str, tuple[str, ...]] = {
    "medical": ("records", "volumes"),
    "werewolf": ("games", "utterances", "votes", "decisions", "role_inference"),
}
