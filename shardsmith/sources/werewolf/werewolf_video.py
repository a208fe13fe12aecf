"""Recorded Werewolf games: a folder of ``<game_id>.<video ext>`` each with a ``<game_id>.json`` sidecar.

The sidecar (``schemas/werewolf_sidecar.schema.json``) gives seats with roles, votes, the winner,
optional phases and optional human-verified speaker ``turns``. An invalid sidecar, a missing one,
an unknown role, or a video without usable audio quarantines the whole game with the reason.

Pipeline per game: decode audio (16 kHz mono) -> transcribe (faster-whisper on the CPU by default)
-> speakers (sidecar turns when present, else diarization mapped to seats) -> utterances, each with
its FLAC clip in ``audio``. Unit for counts: one game (a game is published whole or quarantined).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from shardsmith.config import SpeechOptions
from shardsmith.errors import ShardsmithError
from shardsmith.hashing import sha256_files
from shardsmith.media.audio import (
    SAMPLE_RATE,
    AudioError,
    decode_audio_checked,
    encode_flac,
    media_sha256,
    slice_seconds,
)
from shardsmith.packaged import data_path
from shardsmith.pseudonym import pseudonymise, split_for
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.roles import UnknownRoleError
from shardsmith.sources.labelfiles import LabelFileError, read_json
from shardsmith.sources.werewolf.base import (
    Discovery,
    GameRef,
    GameResult,
    GameSource,
    Skipped,
    canonical_phase,
    dumps,
    phase_at,
    safe_id,
    seat_row,
)
from shardsmith.sources.werewolf.rows import GameRows, phase_row
from shardsmith.speech.base import MissingExtra, Transcriber, TranscriberUnavailable, Transcript
from shardsmith.speech.progress import ProgressCallback, transcription_progress

SOURCE = "werewolf_video"
UNIT = "game"
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")
SIDECAR_SCHEMA = data_path("schemas", "werewolf_sidecar.schema.json")
CLIP_PAD_S = 0.1
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SIDECAR_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_sidecar(data: Any) -> list[str]:
    """Validation messages (empty when valid), each naming where in the sidecar it failed."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    msgs = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    if not msgs and isinstance(data, dict) and (problem := sidecar_problem(data)):
        msgs.append(problem[1])
    return msgs


class SidecarError(ShardsmithError, ValueError):
    """A sidecar that cannot be used; ``reason`` is the quarantine code, ``detail`` names where."""

    reason_in_str = True


def sidecar_problem(data: dict) -> tuple[str, str] | None:
    """The first consistency problem of a schema-valid sidecar, as (reason, detail), else None.

    Each has its own reason so a quarantine says what to fix: a vote or turn naming a seat that does
    not exist, turns that run backwards or overlap (attribution by turn would be ambiguous), phases
    that run backwards.
    """
    seats = [s["seat"] for s in data["seats"]]
    if len(set(seats)) != len(seats):
        return "seat_repeated", f"seats: seat numbers repeat ({sorted(seats)})"
    for i, v in enumerate(data.get("votes", [])):
        for who in ("voter", "target"):
            if v[who] is not None and v[who] not in seats:
                return "vote_seat_unknown", f"votes/{i}: {who} {v[who]} is not a seat (seats {sorted(seats)})"
    turns = data.get("turns", [])
    for i, t in enumerate(turns):
        if isinstance(t["seat"], int) and t["seat"] not in seats:
            return "turn_seat_unknown", f"turns/{i}: seat {t['seat']} is not a seat (seats {sorted(seats)})"
        if t["end"] < t["start"]:
            return "turn_reversed", f"turns/{i}: end {t['end']} before start {t['start']}"
    ordered = sorted(range(len(turns)), key=lambda i: (turns[i]["start"], turns[i]["end"]))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if turns[b]["start"] < turns[a]["end"]:
            return "turns_overlap", (f"turns/{b} starts at {turns[b]['start']} before turns/{a} ends at "
                                     f"{turns[a]['end']}")
    for i, p in enumerate(data.get("phases", [])):
        if p["end"] < p["start"]:
            return "phase_reversed", f"phases/{i}: end {p['end']} before start {p['start']}"
    return None


def load_sidecar(path: Path) -> dict:
    """Read and check one sidecar; SidecarError (naming file and line or JSON path) when it is unusable."""
    try:
        data = read_json(path)
    except LabelFileError as exc:
        raise SidecarError("sidecar_invalid", str(exc)) from exc
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        msgs = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise SidecarError("sidecar_invalid", f"{path.name}: " + "; ".join(msgs))
    problem = sidecar_problem(data)  # schema-valid: the consistency checks can index safely
    if problem:
        raise SidecarError(problem[0], f"{path.name}: {problem[1]}")
    return data


def discover(root: Path) -> Discovery:
    games: list[GameRef] = []
    skipped: list[Skipped] = []
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
    videos = {p.stem: p for p in files if p.suffix.lower() in VIDEO_EXTS}
    for p in files:
        if p.suffix.lower() == ".json" and p.stem not in videos:
            skipped.append(Skipped(str(p), "sidecar without a video"))
        elif p.suffix.lower() not in VIDEO_EXTS and p.suffix.lower() != ".json":
            skipped.append(Skipped(str(p), "not a video or sidecar"))
    for stem in sorted(videos):
        side = videos[stem].with_suffix(".json")
        paths = (("video", str(videos[stem])),) + ((("sidecar", str(side)),) if side.is_file() else ())
        games.append(GameRef(SOURCE, safe_id(SOURCE, stem), stem, paths))
    return Discovery(games, skipped)


def _read_labels(ref: GameRef) -> tuple[dict, list[dict]]:
    """The checked sidecar and its seats (players pseudonymised); SidecarError names what is wrong."""
    video, side_path = ref.path("video"), ref.path("sidecar")
    assert video is not None
    if side_path is None:
        raise SidecarError("sidecar_missing", f"no {video.stem}.json beside {video.name}")
    side = load_sidecar(side_path)
    if side["game_id"] != ref.native_id:
        raise SidecarError("sidecar_invalid", f"game_id {side['game_id']!r} differs from file name {video.stem!r}")
    try:
        seats = [seat_row(s["seat"], s["role"], pseudonymise(s.get("player"), SOURCE)) for s in side["seats"]]
    except UnknownRoleError as exc:
        raise SidecarError("unknown_role", str(exc)) from exc
    return side, seats


def set_aside(ref: GameRef, stage: str, reason: str, detail: str) -> GameResult:
    """The game quarantined before it is decoded (no transcriber here): a problem in its sidecar is
    reported first, since it needs fixing whatever is installed."""
    rows = GameRows(ref, UNIT, str(ref.path("video")), inputs=1)
    try:
        _read_labels(ref)
    except SidecarError as exc:
        return rows.set_aside("labels", exc.reason, exc.detail)
    return rows.set_aside(stage, reason, detail)


def _attribute(side: dict, transcript: Transcript, samples: Any, transcriber: Transcriber, rows: GameRows,
               has_host: bool, speech: SpeechOptions) -> tuple[list, dict[str, Any]]:
    """Speakers of the transcript: sidecar turns when present, else diarization mapped to seats.
    Returns the attributed utterances and the ``speakers`` settings that say how."""
    from shardsmith.speech import speakers as sp

    if side.get("turns"):
        turns = [sp.Turn(float(t["start"]), float(t["end"]), None if t["seat"] == "host" else int(t["seat"]),
                         t["seat"] == "host") for t in side["turns"]]
        return sp.attribute_turns(transcript, turns), {"method": "sidecar_turns"}
    external = None
    if getattr(transcriber, "can_diarize", False):  # whisperx with a local pyannote pipeline
        external = sp.diarization_from_turns(
            transcriber.diarize(samples, len(rows.seats) + (1 if has_host else 0)),  # type: ignore[attr-defined]
            f"pyannote:{Path(str(transcriber.diarization_model_path)).name}",  # type: ignore[attr-defined]
        )
    from shardsmith.speech.embeddings import get_embedder

    embedder = None if external else get_embedder(speech.speaker_weights or None)
    attributed, diar, mapping = sp.attribute_diarization(
        transcript, samples, sorted(rows.seats), has_host, embedder=embedder, diarization=external)
    return attributed, {
        "method": diar.method,
        "clusters": diar.n_clusters,
        "window_s": sp.WINDOW_S,
        "hop_s": sp.HOP_S,
        "mapping": {str(c): [t, round(s, 3)] for c, (t, s) in sorted(mapping.items())},
    }


def _phases(side: dict) -> tuple[list[dict], float | None, float | None]:
    """The sidecar's phases sorted by start, the game's start and its end."""
    phases = sorted((phase_row(canonical_phase(p["name"]) or p["name"].strip().lower(), p["name"],
                               float(p["start"]), float(p["end"])) for p in side.get("phases", [])),
                    key=lambda p: p["start_s"])
    if not phases:
        return phases, None, None
    return phases, phases[0]["start_s"], max(p["end_s"] for p in phases)


def _utterances(rows: GameRows, attributed: list, side: dict, samples: Any, asr_model: str) -> list[dict]:
    """One utterance per attributed run of words, each with its FLAC clip; returns the phases."""
    phases, game_start, game_end = _phases(side)
    for order, u in enumerate(attributed):
        uid = safe_id(rows.game_id, f"{order:05d}")
        phase = phase_at(phases, u.start, game_start, None) if phases else None
        if phase is not None and game_end is not None and u.start > game_end:
            phase = "post_game"
        words = [{"word": w.word.strip(), "start_s": round(w.start, 3), "end_s": round(w.end, 3),
                  "confidence": w.probability} for w in u.words]
        clip = slice_seconds(samples, u.start, u.end, SAMPLE_RATE, CLIP_PAD_S)
        rows.utterance(
            uid, u.text, start_s=round(u.start, 3), end_s=round(u.end, 3), seat=u.seat, is_host=u.is_host,
            label=u.label, speaker_source=u.speaker_source, phase=phase, extra=u.extra, words=words,
            speaker_confidence=u.confidence, asr_model=asr_model, asr_confidence=u.asr_confidence,
            verified=u.verified, audio={"bytes": encode_flac(clip, SAMPLE_RATE), "path": f"{uid}.flac"})
    return phases


def _needs_speakers_extra(ref: GameRef, side: dict, transcriber: Transcriber, speech: SpeechOptions) -> Any:
    """Why diarization cannot run here when the game needs it (no turns, no external diarizer), else None;
    checked before minutes of transcription are spent on the game."""
    if side.get("turns") or getattr(transcriber, "can_diarize", False):
        return None
    from shardsmith.speech.embeddings import missing_speakers_extra

    missing = missing_speakers_extra(speech.speaker_weights or None)
    if missing is not None:
        log.warning("werewolf_video: game %s has no speaker turns in its sidecar, so it needs speaker "
                    "diarization, which needs the '%s' extra: %s", ref.game_id, missing.extra, missing.install)
    return missing


def build_game(ref: GameRef, transcriber: Transcriber, progress: ProgressCallback | None = None,
               speech: SpeechOptions | None = None) -> GameResult:
    """Transcribe and attribute one video game; a failure quarantines the game with its reason.

    ``transcriber`` comes from ``staging.games.build_game``, which chooses it from the settings
    (``speech``, also the source of the speaker-encoder weights). ``progress(done_s, total_s, wall_s)``
    follows the transcription; by default it writes to the ``shardsmith.progress`` logger.
    """
    if transcriber is None:
        raise ValueError("werewolf_video needs a transcriber; staging.games.build_game chooses one")
    speech = speech or SpeechOptions()
    video = ref.path("video")
    rows = GameRows(ref, UNIT, str(video), inputs=1)
    try:
        side, seats = _read_labels(ref)
    except SidecarError as exc:
        return rows.set_aside("labels", exc.reason, exc.detail)
    rows.seats = {s["seat"]: s for s in seats}
    has_host = bool(side.get("host", True))
    if (missing := _needs_speakers_extra(ref, side, transcriber, speech)) is not None:
        return rows.set_aside("transcribe", missing.reason, str(missing))
    try:
        decoded = decode_audio_checked(video)
    except AudioError as exc:
        return rows.set_aside("decode", exc.reason, exc.detail)
    for line in decoded.warnings():
        log.warning("werewolf_video: game %s: %s", ref.game_id, line)
    try:
        transcript = transcriber.transcribe(decoded.samples, progress=progress or transcription_progress(ref.game_id))
    except TranscriberUnavailable as exc:
        return rows.set_aside("transcribe", "transcriber_unavailable", str(exc))
    try:
        attributed, speakers = _attribute(side, transcript, decoded.samples, transcriber, rows, has_host, speech)
    except MissingExtra as exc:
        return rows.set_aside("transcribe", exc.reason, str(exc))
    except TranscriberUnavailable as exc:
        return rows.set_aside("transcribe", "diarizer_unavailable", str(exc))
    phases = _utterances(rows, attributed, side, decoded.samples, transcript.model)
    for v in side.get("votes", []):
        rows.vote(v["day"], v["voter"], v["target"], "sidecar")
    description = transcript.describe()
    description["settings"] = dumps({**transcript.settings, "speakers": speakers})
    return rows.game(
        split=split_for(ref.game_id),  # no official split: deterministic by game
        language=side["language"], rule_variant=safe_id(side.get("rule_variant") or "unknown").lower(),
        rule_variant_text=side.get("rule_variant") or "", has_host=has_host, winner=side.get("winner"),
        phases=phases, media_sha256=media_sha256(video),
        media_duration_s=round(len(decoded.samples) / SAMPLE_RATE, 3), transcription=description,
        raw_sha256=sha256_files([ref.path("sidecar")]), warnings=decoded.warnings(),
        extra={"turns_in_sidecar": bool(side.get("turns"))})


def label_game(ref: GameRef) -> GameResult:
    """Sidecar-only view of a video game for label statistics: seats and roles, no audio decoding."""
    from shardsmith.schemas.roles import UnknownRoleError
    from shardsmith.sources.werewolf.base import seat_row

    res = GameResult(SOURCE, ref.game_id, UNIT, inputs=1)
    side_path = ref.path("sidecar")
    try:
        if side_path is None:
            raise SidecarError("sidecar_missing", "no sidecar beside the video")
        side = load_sidecar(side_path)
        seats = [seat_row(s["seat"], s["role"]) for s in side["seats"]]
    except SidecarError as exc:
        res.quarantine.append(quarantine_row(ref.source, "labels", exc.reason, exc.detail, ref.game_id))
        res.quarantined = 1
        return res
    except UnknownRoleError as exc:
        res.quarantine.append(quarantine_row(ref.source, "labels", "unknown_role", str(exc), ref.game_id))
        res.quarantined = 1
        return res
    res.games.append({"seats": seats})
    res.published = 1
    return res


class WerewolfVideo(GameSource):
    """Your own Werewolf recordings: ``<game>.mp4`` (any common container) + ``<game>.json`` sidecar."""

    name = SOURCE
    unit = UNIT
    needs_asr = True
    licence = "your own recordings (you hold the rights and the players' consent)"
    citation = "—"
    homepage = "—"
    layouts = ("<game>.<mp4|mkv|webm|mov|...> with an optional <game>.json sidecar "
               "(shardsmith/schemas/werewolf_sidecar.schema.json)",)

    def discover(self, root: Path) -> Discovery:
        return discover(root)

    def build_game(self, ref: GameRef, transcriber: Any = None, progress: Any = None,
                   speech: SpeechOptions | None = None) -> GameResult:
        return build_game(ref, transcriber, progress, speech)

    def set_aside(self, ref: GameRef, stage: str, reason: str, detail: str) -> GameResult:
        return set_aside(ref, stage, reason, detail)

    def label_game(self, ref: GameRef) -> GameResult:
        return label_game(ref)
