"""The Werewolf record contracts (DESIGN section 4): games, utterances, votes and two evaluation views.

Tables join by ``game_id``; every table carries the game's ``split`` so that a reader can take "the
test games' utterances" without a join. ``decisions`` and ``role_inference`` are derived per game
from the other three (``shardsmith.views``). Every game source adapter (``sources/werewolf/``)
writes rows of exactly these schemas; the version goes into
the Arrow schema metadata so a release can tell readers which contract its Parquet follows.
Bump WEREWOLF_SCHEMA_VERSION on any change a reader would notice.

Conventions:
- times are seconds from the start of the game's media (or transcript clock), float64;
- ``role`` / ``faction`` are canonical ids from ``schemas/vocabulary/roles.csv``; ``role_source``
  and ``speaker_label`` keep the source's verbatim strings;
- ``speaker_seat`` is null for the host (``is_host`` true) and for speakers nobody resolved;
- JSON-in-a-string columns (``extra``, ``settings``) hold source-specific details that do not
  deserve a column, serialised with sorted keys so that bytes are deterministic.
"""

from __future__ import annotations

import pyarrow as pa

WEREWOLF_SCHEMA_VERSION = "1.2.0"  # 1.1: split on every table; decisions, role_inference; 1.2: speech_items, games.mvp_seat/summary

SPEAKER_SOURCES = ("annotation", "transcript_label", "diarization", "turns")
FACTIONS = ("werewolf", "village", "neutral", "host")
VOTE_SOURCES = ("mvp_record", "sidecar", "voting_outcome")

SEAT_TYPE = pa.struct(
    [
        pa.field("seat", pa.int32()),
        pa.field("player", pa.string()),  # keyed pseudonym; null when the source names no player
        pa.field("role", pa.string()),  # canonical role id (dealt card)
        pa.field("role_source", pa.string()),  # verbatim role string
        pa.field("faction", pa.string()),  # werewolf | village | neutral | host
        pa.field("final_role", pa.string()),  # canonical role at the end, where the game swaps cards
    ]
)

PHASE_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),  # canonical: night_1, sheriff_election, day_1, ...
        pa.field("name_source", pa.string()),  # verbatim (e.g. WereBench's `sheiff_election`)
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
    ]
)

TRANSCRIPTION_TYPE = pa.struct(
    [
        pa.field("backend", pa.string()),  # faster-whisper | whisperx | source (human transcript)
        pa.field("model", pa.string()),
        pa.field("device", pa.string()),
        pa.field("compute_type", pa.string()),
        pa.field("language", pa.string()),
        pa.field("settings", pa.string()),  # JSON: beam size, VAD, diarization method, ...
    ]
)

WORD_TYPE = pa.struct(
    [
        pa.field("word", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("confidence", pa.float32()),
    ]
)

AUDIO_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


def _with_version(schema: pa.Schema, table: str) -> pa.Schema:
    return schema.with_metadata(
        {
            "shardsmith.collection": "werewolf",
            "shardsmith.table": table,
            "shardsmith.schema_version": WEREWOLF_SCHEMA_VERSION,
        }
    )


GAMES_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("native_id", pa.string()),  # e.g. Season_1/01, Youtube/train.json#3
            pa.field("split", pa.string()),  # the source's official split where it has one
            pa.field("language", pa.string()),
            pa.field("rule_variant", pa.string()),  # canonical id (the board's sorted role ids)
            pa.field("rule_variant_text", pa.string()),  # verbatim rules / board description
            pa.field("seats", pa.list_(SEAT_TYPE)),
            pa.field("has_host", pa.bool_()),
            pa.field("winner", pa.string()),  # faction, null where the source does not say
            pa.field("phases", pa.list_(PHASE_TYPE)),
            pa.field("media_sha256", pa.string()),
            pa.field("media_duration_s", pa.float64()),
            pa.field("transcription", TRANSCRIPTION_TYPE),
            pa.field("raw_path", pa.string()),
            pa.field("raw_sha256", pa.string()),  # of the label file(s) the game came from
            pa.field("adapter_version", pa.string()),
            pa.field("warnings", pa.list_(pa.string())),  # data problems fixed or tolerated, in words
            pa.field("extra", pa.string()),  # JSON
            pa.field("mvp_seat", pa.int32()),  # the game's MVP (WereBench), null where the source names none
            pa.field("summary", pa.string()),  # the source's own summary of the game (WereBench: Chinese)
        ]
    ),
    "games",
)

UTTERANCES_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("utterance_id", pa.string(), nullable=False),
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("split", pa.string()),  # the game's split
            pa.field("order", pa.int32(), nullable=False),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),  # null where the source gives only start times
            pa.field("speaker_seat", pa.int32()),
            pa.field("is_host", pa.bool_(), nullable=False),
            pa.field("speaker_label", pa.string()),  # verbatim (说话人 3) or pseudonym / cluster id
            pa.field("speaker_role", pa.string()),
            pa.field("speaker_faction", pa.string()),
            pa.field("phase", pa.string()),  # canonical phase, pre_game / post_game outside the game
            pa.field("text", pa.string()),
            pa.field("words", pa.list_(WORD_TYPE)),
            pa.field("speaker_source", pa.string(), nullable=False),  # see SPEAKER_SOURCES
            pa.field("speaker_confidence", pa.float32()),
            pa.field("asr_model", pa.string()),  # null for human transcripts
            pa.field("asr_confidence", pa.float32()),
            pa.field("verified", pa.bool_(), nullable=False),  # a person verified the speaker
            pa.field("strategies", pa.list_(pa.string())),  # Werewolf Among Us persuasion labels
            pa.field("extra", pa.string()),  # JSON: srt ids, Rec_Id, cluster ids ...
            pa.field("audio", AUDIO_TYPE),  # FLAC clip; null when the source has no audio
        ]
    ),
    "utterances",
)

VOTES_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("split", pa.string()),  # the game's split
            pa.field("day", pa.int32()),
            pa.field("voter_seat", pa.int32()),
            pa.field("target_seat", pa.int32()),  # null: abstained / no target recorded
            pa.field("source", pa.string(), nullable=False),  # mvp_record | sidecar | voting_outcome
            pa.field("cut_off_utterance_id", pa.string()),  # WereBench: where the vote was decided
        ]
    ),
    "votes",
)

# How a decision's context was cut (see shardsmith.werewolf.decisions): before the vote's cut-off line,
# before the end of the vote's day, or (no phases, no cut-off) every in-game utterance.
CONTEXT_RULES = ("before_cut_off", "before_day_end", "before_game_end")

DECISIONS_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("decision_id", pa.string(), nullable=False),
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("split", pa.string()),
            pa.field("day", pa.int32()),
            pa.field("vote_source", pa.string(), nullable=False),  # the vote's ``source`` (mvp_record, ...)
            pa.field("voter_seat", pa.int32()),
            pa.field("voter_role", pa.string()),  # dealt card
            pa.field("voter_faction", pa.string()),
            pa.field("voter_final_role", pa.string()),  # where the game swaps cards (ONUW)
            pa.field("candidate_seats", pa.list_(pa.int32())),  # seats not known to be out before the vote
            pa.field("candidates_exact", pa.bool_()),  # the source records every elimination before it
            pa.field("target_seat", pa.int32()),  # null: abstained / no target recorded
            pa.field("winner", pa.string()),  # the game's winning faction; null where the source does not say
            pa.field("voter_won", pa.bool_()),  # null where the winner is unknown
            pa.field("winning_majority_target", pa.int32()),  # plurality of the winners' votes that day
            pa.field("context_utterance_ids", pa.list_(pa.string())),  # in utterance order
            pa.field("context_rule", pa.string()),  # see CONTEXT_RULES
            pa.field("cut_off_utterance_id", pa.string()),  # the line where the vote was taken (WereBench)
            pa.field("vote_time_s", pa.float64()),  # start of that line; no context line starts later
            pa.field("day_end_s", pa.float64()),  # when the vote's day ends; every context line starts before
            pa.field("warnings", pa.list_(pa.string())),
        ]
    ),
    "decisions",
)

ROLE_INFERENCE_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("split", pa.string()),
            pa.field("seat", pa.int32(), nullable=False),
            pa.field("role", pa.string()),  # the answer: canonical role id of the dealt card
            pa.field("faction", pa.string()),
            pa.field("final_role", pa.string()),
            pa.field("utterance_ids", pa.list_(pa.string())),  # what this seat said, in order
            pa.field("rule_variant", pa.string()),
            pa.field("role_set", pa.list_(pa.string())),  # the game's dealt roles as a sorted multiset
        ]
    ),
    "role_inference",
)

OPTION_TYPE = pa.struct([pa.field("key", pa.string()), pa.field("text", pa.string())])

# One row per item of WereBench's speech question bank (see shardsmith.werewolf.speech_items).
SPEECH_ITEMS_SCHEMA = _with_version(
    pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("game_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("split", pa.string()),  # the game's
            pa.field("dimension", pa.string(), nullable=False),  # canonical snake_case (speech_dimensions.csv)
            pa.field("dimension_source", pa.string()),  # verbatim category name of the bank
            pa.field("bank_item_id", pa.int64()),  # the bank's own id (unique within a category)
            pa.field("question", pa.string()),  # with its context, as the bank words it
            pa.field("question_short", pa.string()),
            pa.field("asker_seat", pa.int32()),  # null when the item asks the whole table (场上玩家)
            pa.field("asker_label", pa.string()),  # verbatim (e.g. 9号, 预言家12号)
            pa.field("asker_role", pa.string()),
            pa.field("asker_faction", pa.string()),
            pa.field("options", pa.list_(OPTION_TYPE)),  # in the bank's order
            pa.field("choices", pa.list_(pa.string())),  # the options' texts, same order (HF multiple choice)
            pa.field("answer_key", pa.string()),
            pa.field("answer", pa.int32()),  # index of answer_key in options / choices
            pa.field("anchor_utterance_id", pa.string()),  # the published utterance of that SRT entry
            pa.field("anchor_srt_id", pa.int64()),
            pa.field("context_utterance_ids", pa.list_(pa.string())),  # the game's lines up to the anchor
            pa.field("explanation", pa.string()),  # null when the bank leaves it empty
            pa.field("language", pa.string()),
        ]
    ),
    "speech_items",
)

TABLES: dict[str, pa.Schema] = {
    "games": GAMES_SCHEMA,
    "utterances": UTTERANCES_SCHEMA,
    "votes": VOTES_SCHEMA,
    "decisions": DECISIONS_SCHEMA,
    "role_inference": ROLE_INFERENCE_SCHEMA,
    "speech_items": SPEECH_ITEMS_SCHEMA,
}
