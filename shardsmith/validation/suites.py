"""Expectation suites per table, as data: frame name -> [(expectation class name, kwargs)].

Kept as plain tuples so the suites can be listed and reviewed without importing GX (slow). The
frames they run on come from ``validation.frames``; derived boolean columns there (``*_inside_*``,
``*_in_roster``, ``*_matches``) carry the facts that need another row or table, and a suite only
requires them to be True. Column map expectations ignore nulls, so a derived column that is None
means "cannot be judged" (e.g. no media duration), never a failure.

Each frame's suite is a :class:`FrameSuite`: its expectations plus the columns it needs (every
column an expectation names, plus any declared beside them) and whether an empty frame may pass.
The runner turns the columns into one ``ExpectTableColumnsToMatchSet`` (a missing column fails, it
is never skipped) and, unless ``allow_empty``, a row-count expectation: a main table (records,
volumes, games, utterances, votes) must have rows; child frames (findings, targets, seats, ...) may
legitimately be empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardsmith.schemas.records import FINDING_STATUSES, MEDIA_TYPES, SPLIT_SOURCES, SPLITS, TARGET_KINDS
from shardsmith.schemas.vocabulary import load_vocabulary

Expectation = tuple[str, dict]


def expectation_columns(kwargs: dict) -> list[str]:
    """The columns one expectation's kwargs name."""
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return cols + list(kwargs.get("column_list", ()))


@dataclass(frozen=True)
class FrameSuite:
    """One frame's expectations, the columns the frame must have, and whether it may be empty."""

    expectations: list[Expectation]
    allow_empty: bool = False
    extra_columns: tuple[str, ...] = ()
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        cols: list[str] = []
        for _, kwargs in self.expectations:
            cols += [c for c in expectation_columns(kwargs) if c not in cols]
        cols += [c for c in self.extra_columns if c not in cols]
        object.__setattr__(self, "columns", tuple(cols))


Suite = dict[str, FrameSuite]  # a bare expectation list is read as FrameSuite(list): rows required


def unique_keys(suite: FrameSuite | list[Expectation]) -> list[tuple[str, ...]]:
    """The keys a frame's suite declares unique: a column (``ExpectColumnValuesToBeUnique``) or a
    compound (``ExpectCompoundColumnsToBeUnique``). GX sees one chunk at a time, so the release also
    checks these over the whole table (``validation.checks.unique_over_files``)."""
    expectations = suite.expectations if isinstance(suite, FrameSuite) else suite
    keys: list[tuple[str, ...]] = []
    for cls, kwargs in expectations:
        key = ((kwargs["column"],) if cls == "ExpectColumnValuesToBeUnique"
               else tuple(kwargs["column_list"]) if cls == "ExpectCompoundColumnsToBeUnique" else None)
        if key and key not in keys:
            keys.append(key)
    return keys

MODALITIES = ["CR", "DX", "CT", "MR", "PT", "US", "OT"]
VOLUME_MODALITIES = ["CT", "MR", "PT"]
MAX_SEATS = 30
SNAKE_ID = r"^[a-z][a-z0-9_]*$"  # canonical ids (phases, roles) are snake_case, never verbatim text
RECORD_ID = r"^[0-9a-f]{24}$"
SHA256 = r"^[0-9a-f]{64}$"


def _not_null_unique(column: str) -> list[tuple[str, dict]]:
    return [("ExpectColumnValuesToNotBeNull", {"column": column}),
            ("ExpectColumnValuesToBeUnique", {"column": column})]


def _true(column: str) -> tuple[str, dict]:
    """A derived boolean column must be True wherever it can be judged (nulls are skipped)."""
    return ("ExpectColumnValuesToBeInSet", {"column": column, "value_set": [True]})


def _ordered(a: str, b: str) -> tuple[str, dict]:
    """``a >= b`` wherever both are known (end after start)."""
    return ("ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": a, "column_B": b, "or_equal": True, "ignore_row_if": "either_value_is_missing"})


def _between(column: str, lo: float | None = None, hi: float | None = None, strict_min: bool = False) -> tuple:
    kw: dict = {"column": column, "min_value": lo, "max_value": hi}
    if strict_min:
        kw["strict_min"] = True
    return ("ExpectColumnValuesToBeBetween", kw)


def _in(column: str, values) -> tuple[str, dict]:
    return ("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)})


def _split_source() -> list[tuple[str, dict]]:
    """Every medical record and volume says where its split came from (official | seeded)."""
    return [("ExpectColumnValuesToNotBeNull", {"column": "split_source"}), _in("split_source", SPLIT_SOURCES),
            ("ExpectColumnValuesToNotBeNull", {"column": "split_official"})]


# Row-count rule as an expectation, for suites written as bare lists; a FrameSuite says it with allow_empty.
NON_EMPTY = ("ExpectTableRowCountToBeBetween", {"min_value": 1})


def record_suites(allow_empty: bool = False) -> Suite:
    """``allow_empty``: a partition whose catalog had no inputs at all may pass with no records."""
    labels = load_vocabulary().labels()
    return {
        "records": FrameSuite([
            *_not_null_unique("record_id"),
            ("ExpectColumnValuesToMatchRegex", {"column": "record_id", "regex": RECORD_ID}),
            ("ExpectColumnValuesToNotBeNull", {"column": "source"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "native_id"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "split"}),
            _in("split", SPLITS),
            *_split_source(),
            _in("modality", MODALITIES),
            _in("media_type", MEDIA_TYPES),
            _between("height", 1, 16384),
            _between("width", 1, 16384),
            ("ExpectColumnValuesToNotBeNull", {"column": "height"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "width"}),
            _between("slice_index", 0),
            ("ExpectColumnValuesToNotBeNull", {"column": "complete"}),
            ("ExpectColumnValuesToMatchRegex", {"column": "raw_sha256", "regex": SHA256}),
        ], allow_empty=allow_empty),
        "findings": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
            _in("label", labels),
            _in("status", FINDING_STATUSES),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["record_id", "label"]}),
        ], allow_empty=True),
        "targets": FrameSuite([
            *_not_null_unique("target_id"),
            _in("label", labels),
            _in("kind", TARGET_KINDS),
            _between("area_px", 0, strict_min=True),
            _true("box_inside_image"),
            _true("mask_size_matches"),
            _true("mask_decodes"),
            _true("has_geometry"),
        ], allow_empty=True),
    }


def volume_suites() -> Suite:
    labels = load_vocabulary().labels()
    return {
        "volumes": FrameSuite([
            *_not_null_unique("record_id"),
            ("ExpectColumnValuesToMatchRegex", {"column": "record_id", "regex": RECORD_ID}),
            ("ExpectColumnValuesToNotBeNull", {"column": "source"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "native_id"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["source", "native_id"]}),
            ("ExpectColumnValuesToNotBeNull", {"column": "split"}),
            _in("split", SPLITS),
            *_split_source(),
            _in("modality", VOLUME_MODALITIES),
            _in("orientation", ["LPS"]),
            _in("ndim", [4]),  # [C, Z, Y, X]
            _true("shape_positive"),
            _true("image_decodes"),
            _true("image_shape_matches"),
            _true("channels_match"),
            _true("label_shape_matches"),
            _true("label_dtype_integer"),
            _true("spacing_positive"),
            _true("affine_valid"),
            _in("label_names_without_map", [False]),
            ("ExpectColumnValuesToMatchRegex", {"column": "raw_sha256", "regex": SHA256}),
        ]),
        "label_names": FrameSuite([
            _between("value", 1, 65535),  # 0 is background and is never named
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["record_id", "value"]}),
            ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
            _in("label", labels),
            _in("kind", TARGET_KINDS),
        ], allow_empty=True),
    }


def _roles() -> list[str]:
    from shardsmith.schemas.roles import load_roles

    return sorted(load_roles().roles())


def games_suites() -> Suite:
    from shardsmith.schemas.werewolf import FACTIONS

    roles = _roles()
    return {
        "games": FrameSuite([
            *_not_null_unique("game_id"),
            ("ExpectColumnValuesToNotBeNull", {"column": "source"}),
            _in("source", _game_sources()),
            _in("split", SPLITS),
            _in("winner", [f for f in FACTIONS if f != "host"]),
            ("ExpectColumnValuesToMatchRegex", {"column": "language", "regex": r"^[a-z]{2,3}(?:-[A-Za-z0-9]+)*$"}),
            _between("media_duration_s", 0, strict_min=True),
            _between("n_seats", 1, MAX_SEATS),
            _true("seats_unique"),
            _true("extra_is_json"),
            ("ExpectColumnValuesToMatchRegex", {"column": "media_sha256", "regex": SHA256}),
            ("ExpectColumnValuesToMatchRegex", {"column": "raw_sha256", "regex": SHA256}),
        ]),
        "seats": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "seat"}),
            _between("seat", 0, MAX_SEATS),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["game_id", "seat"]}),
            _in("role", roles),
            _in("final_role", roles),
            _in("faction", FACTIONS),
            _in("faction", [f for f in FACTIONS if f != "host"]),  # the host holds no seat
            ("ExpectColumnValuesToMatchRegex", {"column": "player", "regex": r"^[0-9a-f]{20}$"}),  # pseudonym
        ], allow_empty=True),
        "phases": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "name"}),
            ("ExpectColumnValuesToMatchRegex", {"column": "name", "regex": SNAKE_ID}),
            _between("start_s", 0),
            _ordered("end_s", "start_s"),
            _true("phase_in_media"),
        ], allow_empty=True),
    }


def utterance_suites() -> Suite:
    from shardsmith.schemas.werewolf import FACTIONS, SPEAKER_SOURCES

    roles = _roles()
    return {
        "utterances": FrameSuite([
            *_not_null_unique("utterance_id"),
            ("ExpectColumnValuesToNotBeNull", {"column": "game_id"}),
            *_split_of_game(),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["game_id", "order"]}),
            _between("order", 0),
            _between("start_s", 0),
            _ordered("end_s", "start_s"),
            ("ExpectColumnValuesToNotBeNull", {"column": "speaker_source"}),
            _in("speaker_source", SPEAKER_SOURCES),
            _in("speaker_role", roles),
            _in("speaker_faction", FACTIONS),
            ("ExpectColumnValuesToMatchRegex", {"column": "phase", "regex": SNAKE_ID}),
            _between("speaker_confidence", 0, 1),
            _between("asr_confidence", 0, 1),
            ("ExpectColumnValuesToNotBeNull", {"column": "verified"}),
            _true("game_known"),
            _true("speaker_in_roster"),
            _true("within_media"),
            _true("host_has_no_seat"),
            _true("has_text"),
            _true("extra_is_json"),
        ]),
        "words": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "utterance_id"}),
            _between("start_s", 0),
            _ordered("end_s", "start_s"),
            _between("confidence", 0, 1),
            _true("within_utterance"),
        ], allow_empty=True),
    }


def vote_suites() -> Suite:
    from shardsmith.schemas.werewolf import VOTE_SOURCES

    return {
        "votes": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "game_id"}),
            *_split_of_game(),
            ("ExpectColumnValuesToNotBeNull", {"column": "source"}),
            _in("source", VOTE_SOURCES),
            _between("day", 0, 100),
            ("ExpectColumnValuesToNotBeNull", {"column": "voter_seat"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["game_id", "day", "voter_seat", "source"]}),
            _true("game_known"),
            _true("voter_in_roster"),
            _true("target_in_roster"),
        ]),
    }


def _split_of_game() -> list[tuple[str, dict]]:
    """Every Werewolf table carries its game's split (published under data/<table>/<split>/)."""
    return [("ExpectColumnValuesToNotBeNull", {"column": "split"}), _in("split", SPLITS),
            _true("split_matches_game")]


def decision_suites() -> Suite:
    from shardsmith.schemas.werewolf import CONTEXT_RULES, FACTIONS, VOTE_SOURCES

    roles = _roles()
    players = [f for f in FACTIONS if f != "host"]
    return {
        "decisions": [
            NON_EMPTY,
            *_not_null_unique("decision_id"),
            ("ExpectColumnValuesToNotBeNull", {"column": "game_id"}),
            *_split_of_game(),
            _in("vote_source", VOTE_SOURCES),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["game_id", "day", "voter_seat", "vote_source"]}),
            _between("day", 0, 100),
            ("ExpectColumnValuesToNotBeNull", {"column": "voter_seat"}),
            _in("voter_role", roles),
            _in("voter_final_role", roles),
            _in("voter_faction", players),
            _in("winner", players),
            ("ExpectColumnValuesToNotBeNull", {"column": "context_rule"}),
            _in("context_rule", CONTEXT_RULES),
            _between("n_candidates", 1, MAX_SEATS),
            _between("vote_time_s", 0),
            _between("day_end_s", 0),
            _true("game_known"),
            _true("voter_in_roster"),
            _true("voter_role_matches_roster"),
            _true("voter_is_candidate"),
            _true("target_is_candidate"),
            _true("majority_is_candidate"),
            _true("candidates_in_roster"),
        ],
        # a vote taken before anyone spoke has no context rows: the frame may be empty
        "decision_context": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "utterance_id"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["decision_id", "utterance_id"]}),
            _between("position", 0),
        ], allow_empty=True),
    }


def role_inference_suites() -> Suite:
    from shardsmith.schemas.werewolf import FACTIONS

    roles = _roles()
    return {
        "role_inference": [
            NON_EMPTY,
            *_not_null_unique("item_id"),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["game_id", "seat"]}),
            *_split_of_game(),
            ("ExpectColumnValuesToNotBeNull", {"column": "role"}),
            _in("role", roles),
            _in("final_role", roles),
            _in("faction", [f for f in FACTIONS if f != "host"]),
            _true("game_known"),
            _true("seat_in_roster"),
            _true("role_matches_roster"),
            _true("role_in_role_set"),
            _true("role_set_matches_roster"),
        ],
        "role_utterances": FrameSuite([  # a seat that never spoke has no rows here
            ("ExpectColumnValuesToNotBeNull", {"column": "utterance_id"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["item_id", "utterance_id"]}),
        ], allow_empty=True),
    }


def speech_item_suites() -> Suite:
    from shardsmith.schemas.werewolf import FACTIONS
    from shardsmith.werewolf.speech_items import dimensions

    return {
        "speech_items": [
            NON_EMPTY,
            *_not_null_unique("item_id"),
            ("ExpectColumnValuesToNotBeNull", {"column": "game_id"}),
            *_split_of_game(),
            ("ExpectColumnValuesToNotBeNull", {"column": "dimension"}),
            _in("dimension", sorted(set(dimensions().values()))),
            ("ExpectColumnValuesToNotBeNull", {"column": "question"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "answer_key"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "anchor_utterance_id"}),
            _between("n_options", 2, 26),
            _between("n_context", 1),
            _between("asker_seat", 0, MAX_SEATS),
            _in("asker_role", _roles()),
            _in("asker_faction", [f for f in FACTIONS if f != "host"]),
            ("ExpectColumnValuesToMatchRegex", {"column": "language", "regex": r"^[a-z]{2,3}(?:-[A-Za-z0-9]+)*$"}),
            _true("game_known"),
            _true("asker_in_roster"),
            _true("answer_in_options"),
            _true("answer_index_matches"),
            _true("context_ends_at_anchor"),
        ],
        "speech_options": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "key"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["item_id", "key"]}),
            ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
        ], allow_empty=True),
        "speech_context": FrameSuite([
            ("ExpectColumnValuesToNotBeNull", {"column": "utterance_id"}),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["item_id", "utterance_id"]}),
        ], allow_empty=True),
    }


def duplicate_suites() -> Suite:
    from shardsmith.schemas.duplicates import METHODS

    return {
        "duplicates": [
            *_not_null_unique("record_id"),
            ("ExpectColumnValuesToNotBeNull", {"column": "duplicate_group"}),
            ("ExpectColumnValuesToMatchRegex", {"column": "duplicate_group", "regex": r"^g[0-9a-f]+$"}),
            _in("method", list(METHODS)),
            _in("split", list(SPLITS)),
            _between("distance", 0, 64),
            ("ExpectColumnValuesToNotBeNull", {"column": "linked_record_id"}),
        ],
    }


def suites_for(table: str) -> Suite:
    """The suite of one release table, by name."""
    return {"records": record_suites, "volumes": volume_suites, "games": games_suites, "duplicates": duplicate_suites,
            "utterances": utterance_suites, "votes": vote_suites, "decisions": decision_suites,
            "role_inference": role_inference_suites, "speech_items": speech_item_suites}[table]()



def _game_sources() -> list[str]:
    """The werewolf sources the registry knows (built-in and installed plugins)."""
    from shardsmith.sources.registry import game_source_names

    return game_source_names()
