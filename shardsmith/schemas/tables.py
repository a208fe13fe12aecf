"""What each published table looks like in a release: its schema, its media columns, its key.

Media columns become WebDataset members (``<key>.<ext>``); every other column goes into the
sample's ``.json``. A struct media column is ``{bytes, path}`` (the Hugging Face Image/Audio
convention); a binary column is stored as is.

``checks`` names the integrity checks a release runs on the table (beyond its GX suites); they are
resolved by name in ``shardsmith.validation.checks`` (schemas never import validation).
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
    checks: tuple[str, ...] = ()  # names in shardsmith.validation.checks.CHECKS
    # media column -> the column naming each row's media type, whose extension (``media_extensions``)
    # replaces the table's default: a records row holding a JPEG is ``<key>.jpg``, a PNG ``<key>.png``.
    media_types: dict[str, str] = field(default_factory=dict)
    media_extensions_ref: str = ""  # "module:ATTRIBUTE" of the media type -> extension mapping

    def media_extension(self, column: str, row: dict) -> str:
        """The WebDataset extension of ``column`` in ``row``: its media type's, else the table's."""
        kind = row.get(self.media_types[column]) if column in self.media_types else None
        if kind is None:
            return self.media[column]
        module, attr = self.media_extensions_ref.split(":")
        return getattr(importlib.import_module(module), attr)[kind]

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


def _pretraining(name: str, key: str, checks: tuple[str, ...]) -> TableSpec:
    """A pretraining view's spec: its schema and version live in ``schemas.pretraining``."""
    return TableSpec(name, f"shardsmith.schemas.pretraining:{name.upper()}_SCHEMA", key,
                     version_ref="shardsmith.schemas.pretraining:PRETRAINING_SCHEMA_VERSION", checks=checks)


TABLES: dict[str, TableSpec] = {
    "records": TableSpec(
        "records", "shardsmith.schemas.records:RECORDS_SCHEMA", "record_id", {"image": "png"},
        version_ref="shardsmith.schemas.records:RECORDS_SCHEMA_VERSION",
        checks=("patients_in_one_split", "normal_has_no_abnormality", "masks_decode_to_image_size"),
        media_types={"image": "media_type"}, media_extensions_ref="shardsmith.schemas.records:MEDIA_EXTENSIONS",
    ),
    "volumes": TableSpec(
        "volumes", "shardsmith.schemas.volumes:VOLUMES_SCHEMA", "record_id",
        {"image_npy": "image.npy", "label_npy": "label.npy"},
        version_ref="shardsmith.schemas.volumes:VOLUMES_SCHEMA_VERSION",
        checks=("patients_in_one_split", "volume_labels_named", "patients_in_one_split_across_tables"),
    ),
    "games": TableSpec(
        "games", "shardsmith.schemas.werewolf:GAMES_SCHEMA", "game_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
    ),
    "utterances": TableSpec(
        "utterances", "shardsmith.schemas.werewolf:UTTERANCES_SCHEMA", "utterance_id", {"audio": "flac"},
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
        checks=("utterances_do_not_overlap", "utterance_times_inside_media"),
    ),
    "votes": TableSpec(
        "votes", "shardsmith.schemas.werewolf:VOTES_SCHEMA", "vote_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
        checks=("votes_reference_roster",),
    ),
    "decisions": TableSpec(
        "decisions", "shardsmith.schemas.werewolf:DECISIONS_SCHEMA", "decision_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
        checks=("decision_context_before_vote", "decisions_cover_votes"),
    ),
    "role_inference": TableSpec(
        "role_inference", "shardsmith.schemas.werewolf:ROLE_INFERENCE_SCHEMA", "item_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
        checks=("role_items_cover_roster", "role_items_list_the_seats_lines"),
    ),
    # WereBench's speech question bank, tied to the published games (shardsmith.werewolf.speech_items).
    "speech_items": TableSpec(
        "speech_items", "shardsmith.schemas.werewolf:SPEECH_ITEMS_SCHEMA", "item_id",
        version_ref="shardsmith.schemas.werewolf:WEREWOLF_SCHEMA_VERSION",
        checks=("speech_answer_in_options", "speech_anchor_exists", "speech_context_not_after_anchor",
                "speech_items_in_game_split"),
    ),
    # Cross-source identity (issue 13; shardsmith.identity): one row per record in a duplicate group.
    "duplicates": TableSpec(
        "duplicates", "shardsmith.schemas.duplicates:DUPLICATES_SCHEMA", "record_id",
        version_ref="shardsmith.schemas.duplicates:DUPLICATES_SCHEMA_VERSION",
    ),
    # Task views derived from records at release time (issue 14; shardsmith.views).
    "grounding": TableSpec(
        "grounding", "shardsmith.schemas.views:GROUNDING_SCHEMA", "grounding_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION", checks=("view_references",),
    ),
    "consensus": TableSpec(
        "consensus", "shardsmith.schemas.views:CONSENSUS_SCHEMA", "consensus_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION", checks=("view_references",),
    ),
    "dialogues": TableSpec(
        "dialogues", "shardsmith.schemas.views:DIALOGUES_SCHEMA", "turn_id",
        version_ref="shardsmith.schemas.views:VIEWS_SCHEMA_VERSION", checks=("view_references",),
    ),
    # Pretraining views derived from records at release time (issue 23; shardsmith.views.pretrain, .pairs,
    # .knowledge); knowledge rows from the vocabulary belong to no split ("shared").
    **{name: _pretraining(name, key, checks) for name, key, checks in (
        ("pretrain", "record_id", ("pretraining_references", "pretrain_covers_every_image_group")),
        ("pairs", "pair_id", ("pretraining_references",)),
        ("knowledge", "knowledge_id", ("pretraining_references",)),
    )},
}

COLLECTION_TABLES: dict[str, tuple[str, ...]] = {
    "medical": ("records", "volumes"),
    "werewolf": ("games", "utterances", "votes", "decisions", "role_inference", "speech_items"),
}
