"""Flatten nested release tables into the flat frames GX expectations can test.

GX expectations work on columns of scalars, so nested lists (findings, targets, seats, phases,
words, label names) are exploded into frames of their own, and facts that need a second row or
table (a box inside its image, a speaker seat in the game's roster, a time inside the media) are
precomputed here as boolean columns that a suite then requires to be True. No pixels or audio
are decoded: volume shapes come from the ``.npy`` headers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

RECORD_SCALARS = [
    "record_id", "source", "native_id", "patient_id", "split", "split_source", "split_official", "modality",
    "body_part", "view", "media_type", "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
]
# Times may sit this far past the media end (rounding in transcripts, a last frame).
MEDIA_TOLERANCE_S = 0.5


def read_tables(files: list, columns: list[str] | None = None) -> pa.Table:
    tables = []
    for f in files:
        names = pq.read_schema(f).names
        tables.append(pq.read_table(f, columns=[c for c in columns if c in names] if columns else None))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


def iter_rows(files: list[Path], columns: list[str] | None = None, batch_size: int = 64) -> Iterator[dict]:
    """Rows of several Parquet files in batches, so large binary columns never all sit in memory."""
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
            yield from batch.to_pylist()


# ------------------------------------------------------------------------------------ records
def record_frames(table: pa.Table) -> dict[str, pd.DataFrame]:
    """records -> {"records", "findings", "targets"} frames (no pixels are loaded)."""
    cols = [c for c in RECORD_SCALARS if c in table.column_names]
    records = table.select(cols).to_pandas()
    target_rows = []
    # Findings (about 14 per record) are flattened in Arrow, not as one Python dict per finding.
    lists = table["findings"].combine_chunks()
    flat = pc.list_flatten(lists)
    findings = pa.table({
        "record_id": pc.take(table["record_id"].combine_chunks(), pc.list_parent_indices(lists)),
        "label": flat.field("label"),
        "status": flat.field("status"),
    }).to_pandas()
    has_targets = pc.fill_null(pc.greater(pc.list_value_length(table["targets"]), 0), False)
    sub = table.filter(has_targets)
    for rid, h, w, ts in zip(
        sub["record_id"].to_pylist(), sub["height"].to_pylist(), sub["width"].to_pylist(),
        sub["targets"].to_pylist(), strict=True,
    ):
        for t in ts or ():
            box = t["box_xyxy"]
            inside = None
            if box:
                inside = bool(h is not None and w is not None and len(box) == 4
                              and box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h
                              and box[2] > box[0] and box[3] > box[1])
            rle = t.get("mask_rle")
            target_rows.append({
                "record_id": rid, "target_id": t["target_id"], "label": t["label"], "kind": t["kind"],
                "area_px": t["area_px"], "box_inside_image": inside,
                "mask_size_matches": None if not rle else list(rle["size"]) == [h, w],
                "mask_decodes": None if not rle else _mask_decodes(rle, h, w, t["area_px"]),
                "has_geometry": bool(box) or bool(rle),
            })
    targets = pd.DataFrame(target_rows, columns=["record_id", "target_id", "label", "kind", "area_px",
                                                 "box_inside_image", "mask_size_matches", "mask_decodes",
                                                 "has_geometry"])
    return {"records": records, "findings": findings, "targets": targets}


def _mask_decodes(rle: dict, h: int | None, w: int | None, area: float | None) -> bool:
    """The RLE counts decode to an h x w mask whose area is the stated ``area_px``."""
    from shardsmith.media.masks import MaskError, coco_rle_decode

    try:
        mask = coco_rle_decode(rle)
    except MaskError:
        return False
    return mask.shape == (h, w) and (area is None or abs(float(mask.sum()) - float(area)) <= 0.5)


# ------------------------------------------------------------------------------------ volumes
VOLUME_SCALARS = [
    "record_id", "source", "native_id", "patient_id", "split", "split_source", "split_official", "modality",
    "body_part", "orientation", "raw_sha256",
]


def npy_shape(data: bytes | None) -> tuple[list[int] | None, str | None]:
    """Shape and dtype from a ``numpy.save`` header without reading the array."""
    if not data:
        return None, None
    try:
        fh = io.BytesIO(data)
        major, _ = np.lib.format.read_magic(fh)
        if major == 1:
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError):
        return None, None
    return [int(s) for s in shape], str(dtype)


def volume_frame_row(row: dict) -> tuple[dict, list[dict]]:
    """One volumes row -> its flat row (shape checks from npy headers) and its label-name rows."""
    out = {c: row.get(c) for c in VOLUME_SCALARS}
    shape = list(row.get("shape") or [])
    img_shape, _ = npy_shape(row.get("image_npy"))
    lab_shape, lab_dtype = npy_shape(row.get("label_npy"))
    channels = row.get("channel_names") or []
    spacing = list(row.get("spacing_mm") or [])
    affine = list(row.get("affine_lps") or [])
    out.update({
        "ndim": len(shape),
        "shape_positive": bool(shape) and all(s > 0 for s in shape),
        "image_decodes": img_shape is not None,
        "image_shape_matches": img_shape == shape if img_shape is not None else False,
        "channels_match": bool(shape) and shape[0] == len(channels),
        # a label map is [Z, Y, X] on the image grid; None (unlabelled case) is not an error
        "label_shape_matches": None if row.get("label_npy") is None else (lab_shape == shape[1:]),
        "label_dtype_integer": None if lab_dtype is None else np.dtype(lab_dtype).kind in "ui",
        "spacing_positive": len(spacing) == 3 and all(s is not None and s > 0 and np.isfinite(s) for s in spacing),
        "affine_valid": len(affine) == 16 and all(v is not None and np.isfinite(v) for v in affine),
        "label_names_without_map": bool(row.get("label_names")) and row.get("label_npy") is None,
    })
    names = [{"record_id": row.get("record_id"), "value": n["value"], "label": n["label"], "kind": n["kind"]}
             for n in row.get("label_names") or ()]
    return out, names


VOLUME_READ_COLUMNS = VOLUME_SCALARS + ["shape", "image_npy", "label_npy", "channel_names", "spacing_mm",
                                        "affine_lps", "label_names"]


def volume_frames(files: list[Path]) -> dict[str, pd.DataFrame]:
    """volumes -> {"volumes", "label_names"}; arrays are streamed, only their headers are read."""
    rows, names = [], []
    for row in iter_rows(files, VOLUME_READ_COLUMNS, batch_size=4):
        r, n = volume_frame_row(row)
        rows.append(r)
        names += n
    cols = VOLUME_SCALARS + ["ndim", "shape_positive", "image_decodes", "image_shape_matches", "channels_match",
                             "label_shape_matches", "label_dtype_integer", "spacing_positive", "affine_valid",
                             "label_names_without_map"]
    return {
        "volumes": pd.DataFrame(rows, columns=cols),
        "label_names": pd.DataFrame(names, columns=["record_id", "value", "label", "kind"]),
    }


# ------------------------------------------------------------------------------------ werewolf
GAME_SCALARS = ["game_id", "source", "native_id", "split", "language", "rule_variant", "has_host", "winner",
                "media_sha256", "media_duration_s", "raw_sha256", "adapter_version"]
UTTERANCE_SCALARS = ["utterance_id", "game_id", "source", "split", "order", "start_s", "end_s", "speaker_seat", "is_host",
                     "speaker_label", "speaker_role", "speaker_faction", "phase", "speaker_source",
                     "speaker_confidence", "asr_model", "asr_confidence", "verified"]
VOTE_SCALARS = ["game_id", "split", "day", "voter_seat", "target_seat", "source", "cut_off_utterance_id"]
DECISION_SCALARS = ["decision_id", "game_id", "source", "split", "day", "vote_source", "voter_seat", "voter_role",
                    "voter_faction", "voter_final_role", "candidates_exact", "target_seat", "winner", "voter_won",
                    "winning_majority_target", "context_rule", "cut_off_utterance_id", "vote_time_s", "day_end_s"]
ROLE_ITEM_SCALARS = ["item_id", "game_id", "source", "split", "seat", "role", "faction", "final_role",
                     "rule_variant"]


def _inside(start: float | None, end: float | None, duration: float | None, tol: float) -> bool | None:
    """Whether [start, end] lies in [0, duration + tol]; None when the media length is unknown."""
    if duration is None or (isinstance(duration, float) and np.isnan(duration)):
        return None if start is None or start >= -tol else False
    last = end if end is not None else start
    if start is None:
        return None
    return bool(start >= -tol and last <= duration + tol)


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def werewolf_frames(games: pa.Table | None, utterances: pa.Table | None, votes: pa.Table | None,
                    tolerance_s: float = MEDIA_TOLERANCE_S, *, decisions: pa.Table | None = None,
                    role_inference: pa.Table | None = None,
                    speech_items: pa.Table | None = None) -> dict[str, pd.DataFrame]:
    """games/utterances/votes/decisions/role_inference -> frames for the per-table suites, with roster,
    split and media joins done.

    Keys: ``games``, ``seats``, ``phases`` (from games), ``utterances``, ``words``, ``votes``,
    ``decisions``, ``decision_context`` (one row per context utterance), ``role_inference``,
    ``role_utterances`` (one row per listed utterance). A frame is absent when its table is absent.
    """
    out: dict[str, pd.DataFrame] = {}
    roster: dict[str, set[int]] = {}
    seat_role: dict[tuple[str, int], str | None] = {}
    split_of: dict[str, str | None] = {}
    duration: dict[str, float | None] = {}
    if games is not None:
        game_rows, seat_rows, phase_rows = [], [], []
        for g in games.to_pylist():
            gid = g["game_id"]
            seats = g.get("seats") or []
            numbers = [s["seat"] for s in seats]
            roster[gid] = {n for n in numbers if n is not None}
            split_of[gid] = g.get("split")
            seat_role.update({(gid, s["seat"]): s.get("role") for s in seats if s.get("seat") is not None})
            dur = _nan_to_none(g.get("media_duration_s"))
            duration[gid] = dur
            row = {c: g.get(c) for c in GAME_SCALARS}
            row.update({"n_seats": len(seats), "seats_unique": len(numbers) == len(set(numbers)),
                        "rule_variant_has_text": bool(g.get("rule_variant_text")) or not g.get("rule_variant"),
                        "extra_is_json": _is_json(g.get("extra"))})
            game_rows.append(row)
            for s in seats:
                seat_rows.append({"game_id": gid, **{k: s.get(k) for k in
                                                     ("seat", "player", "role", "faction", "final_role")}})
            for p in g.get("phases") or ():
                phase_rows.append({"game_id": gid, "name": p.get("name"), "start_s": p.get("start_s"),
                                   "end_s": p.get("end_s"),
                                   "phase_in_media": _inside(p.get("start_s"), p.get("end_s"), dur, tolerance_s)})
        out["games"] = pd.DataFrame(game_rows, columns=GAME_SCALARS + ["n_seats", "seats_unique",
                                                                       "rule_variant_has_text", "extra_is_json"])
        out["seats"] = pd.DataFrame(seat_rows, columns=["game_id", "seat", "player", "role", "faction",
                                                        "final_role"])
        out["phases"] = pd.DataFrame(phase_rows, columns=["game_id", "name", "start_s", "end_s", "phase_in_media"])
    known = set(roster) if games is not None else None
    if utterances is not None:
        cols = [c for c in UTTERANCE_SCALARS + ["words", "text", "extra"] if c in utterances.column_names]
        utt_rows, word_rows = [], []
        for u in utterances.select(cols).to_pylist():
            gid, seat = u.get("game_id"), u.get("speaker_seat")
            row = {c: u.get(c) for c in UTTERANCE_SCALARS}
            row.update({
                "game_known": None if known is None else gid in known,
                "split_matches_game": _same_split(u.get("split"), gid, split_of, known),
                "speaker_in_roster": None if seat is None or known is None else seat in roster.get(gid, set()),
                "within_media": _inside(u.get("start_s"), u.get("end_s"), duration.get(gid), tolerance_s),
                "host_has_no_seat": not (u.get("is_host") and seat is not None),
                "has_text": bool((u.get("text") or "").strip()),
                "extra_is_json": _is_json(u.get("extra")),
            })
            utt_rows.append(row)
            us, ue = u.get("start_s"), u.get("end_s")
            for w in u.get("words") or ():
                ws, we = w.get("start_s"), w.get("end_s")
                inside = None
                if ws is not None and we is not None and us is not None:
                    inside = bool(ws >= us - tolerance_s and (ue is None or we <= ue + tolerance_s))
                word_rows.append({"utterance_id": u.get("utterance_id"), "start_s": ws, "end_s": we,
                                  "confidence": w.get("confidence"), "within_utterance": inside})
        out["utterances"] = pd.DataFrame(utt_rows, columns=UTTERANCE_SCALARS + [
            "game_known", "split_matches_game", "speaker_in_roster", "within_media", "host_has_no_seat", "has_text", "extra_is_json"])
        out["words"] = pd.DataFrame(word_rows, columns=["utterance_id", "start_s", "end_s", "confidence",
                                                        "within_utterance"])
    if votes is not None:
        vote_rows = []
        for v in votes.to_pylist():
            gid, voter, target = v.get("game_id"), v.get("voter_seat"), v.get("target_seat")
            seats = roster.get(gid, set())
            row = {c: v.get(c) for c in VOTE_SCALARS}
            row.update({
                "game_known": None if known is None else gid in known,
                "split_matches_game": _same_split(v.get("split"), gid, split_of, known),
                "voter_in_roster": None if voter is None or known is None else voter in seats,
                "target_in_roster": None if target is None or known is None else target in seats,
            })
            vote_rows.append(row)
        out["votes"] = pd.DataFrame(vote_rows, columns=VOTE_SCALARS + ["game_known", "split_matches_game",
                                                                       "voter_in_roster", "target_in_roster"])
    if decisions is not None:
        out.update(_decision_frames(decisions, roster, seat_role, split_of, known))
    if role_inference is not None:
        out.update(_role_item_frames(role_inference, roster, seat_role, split_of, known))
    if speech_items is not None:
        from shardsmith.validation.speech_frames import speech_item_frames

        out.update(speech_item_frames(speech_items, roster, split_of, known))
    return out


def _same_split(split: str | None, gid: str, split_of: dict[str, str | None], known: set | None) -> bool | None:
    """A row's split equals its game's (None: no games to compare with, or the game is unknown)."""
    if known is None or gid not in known:
        return None
    return split == split_of.get(gid)


def _member(value: int | None, values: list | None) -> bool | None:
    return None if value is None else value in (values or [])


DECISION_DERIVED = ["n_candidates", "n_context", "n_warnings", "game_known", "split_matches_game",
                    "voter_in_roster", "voter_role_matches_roster", "voter_is_candidate", "target_is_candidate",
                    "majority_is_candidate", "candidates_in_roster"]


def _decision_frames(decisions: pa.Table, roster: dict[str, set[int]], seat_role: dict, split_of: dict,
                     known: set | None) -> dict[str, pd.DataFrame]:
    rows, context = [], []
    for d in decisions.to_pylist():
        gid, voter, cands = d.get("game_id"), d.get("voter_seat"), d.get("candidate_seats") or []
        seats = roster.get(gid, set())
        row = {c: d.get(c) for c in DECISION_SCALARS}
        row.update({
            "n_candidates": len(cands),
            "n_context": len(d.get("context_utterance_ids") or []),
            "n_warnings": len(d.get("warnings") or []),
            "game_known": None if known is None else gid in known,
            "split_matches_game": _same_split(d.get("split"), gid, split_of, known),
            "voter_in_roster": None if voter is None or known is None else voter in seats,
            "voter_role_matches_roster": None if voter is None or known is None
            else seat_role.get((gid, voter)) == d.get("voter_role"),
            "voter_is_candidate": _member(voter, cands),
            "target_is_candidate": _member(d.get("target_seat"), cands),
            "majority_is_candidate": _member(d.get("winning_majority_target"), cands),
            "candidates_in_roster": None if known is None else set(cands) <= seats,
        })
        rows.append(row)
        for pos, uid in enumerate(d.get("context_utterance_ids") or []):
            context.append({"decision_id": d.get("decision_id"), "game_id": gid, "position": pos,
                            "utterance_id": uid})
    return {"decisions": pd.DataFrame(rows, columns=DECISION_SCALARS + DECISION_DERIVED),
            "decision_context": pd.DataFrame(context, columns=["decision_id", "game_id", "position",
                                                               "utterance_id"])}


ROLE_ITEM_DERIVED = ["n_utterances", "game_known", "split_matches_game", "seat_in_roster", "role_matches_roster",
                     "role_in_role_set", "role_set_matches_roster"]


def _role_item_frames(items: pa.Table, roster: dict[str, set[int]], seat_role: dict, split_of: dict,
                      known: set | None) -> dict[str, pd.DataFrame]:
    dealt: dict[str, list[str]] = {}
    for (gid, _), role in seat_role.items():
        if role:
            dealt.setdefault(gid, []).append(role)
    rows, said = [], []
    for r in items.to_pylist():
        gid, seat, board = r.get("game_id"), r.get("seat"), r.get("role_set") or []
        row = {c: r.get(c) for c in ROLE_ITEM_SCALARS}
        row.update({
            "n_utterances": len(r.get("utterance_ids") or []),
            "game_known": None if known is None else gid in known,
            "split_matches_game": _same_split(r.get("split"), gid, split_of, known),
            "seat_in_roster": None if known is None else seat in roster.get(gid, set()),
            "role_matches_roster": None if known is None else seat_role.get((gid, seat)) == r.get("role"),
            "role_in_role_set": r.get("role") in board,
            "role_set_matches_roster": None if known is None else sorted(board) == sorted(dealt.get(gid, [])),
        })
        rows.append(row)
        for uid in r.get("utterance_ids") or []:
            said.append({"item_id": r.get("item_id"), "game_id": gid, "seat": seat, "utterance_id": uid})
    return {"role_inference": pd.DataFrame(rows, columns=ROLE_ITEM_SCALARS + ROLE_ITEM_DERIVED),
            "role_utterances": pd.DataFrame(said, columns=["item_id", "game_id", "seat", "utterance_id"])}


def _is_json(text: str | None) -> bool | None:
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
