"""Checks that need more than one row or more than one table, as plain code."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pyarrow as pa

from shardsmith.validation.outcome import CheckOutcome

# Canonical findings that a normal study may carry: CheXpert marks tubes and lines beside "No Finding".
NOT_A_PATHOLOGY = frozenset({"support_devices"})


def patients_in_one_split(records: pd.DataFrame) -> CheckOutcome:
    """No patient may span two splits (leakage between train and test)."""
    df = records.dropna(subset=["patient_id"])
    per = df.groupby(["source", "patient_id"])["split"].nunique()
    bad = per[per > 1]
    return CheckOutcome("patients_in_one_split", bad.empty,
                        f"{len(bad)} patient(s) in more than one split",
                        [f"{s}/{p}" for s, p in bad.index[:5]])


def normal_has_no_abnormality(records: pd.DataFrame, targets: pd.DataFrame,
                              findings: pd.DataFrame) -> CheckOutcome:
    """``abnormal = false`` never sits beside an abnormality target or a present finding."""
    normal_ids = set(records.loc[records["abnormal"].eq(False), "record_id"])
    pathology_t = targets["kind"].eq("abnormality") & ~targets["label"].isin(NOT_A_PATHOLOGY)
    with_targets = set(targets.loc[pathology_t, "record_id"])
    present = findings["status"].eq("present") & ~findings["label"].isin(NOT_A_PATHOLOGY)
    with_present = set(findings.loc[present, "record_id"])
    bad = sorted(normal_ids & (with_targets | with_present))
    return CheckOutcome("normal_has_no_abnormality", not bad,
                        f"{len(bad)} normal record(s) carry an abnormality", bad[:5])


def reconcile(inputs: int, published_items: int, quarantined: int) -> CheckOutcome:
    """inputs = published + quarantined: nothing is silently dropped or invented."""
    ok = inputs == published_items + quarantined
    return CheckOutcome("inputs_reconcile", ok,
                        f"inputs {inputs} = published {published_items} + quarantined {quarantined}"
                        + ("" if ok else " does NOT hold"))


def record_integrity(frames: dict[str, pd.DataFrame]) -> list[CheckOutcome]:
    r, t, f = frames["records"], frames["targets"], frames["findings"]
    return [patients_in_one_split(r), normal_has_no_abnormality(r, t, f)]


def masks_decode_to_image_size(table: pa.Table) -> CheckOutcome:
    """Every target mask decodes, to the record's height x width, with the area the row states.

    The GX suite only compares the RLE's declared size; this decodes the counts, which is what a
    loader will do, so a truncated or mis-sized RLE is caught before it ships.
    """
    from shardsmith.media.masks import MaskError, coco_rle_decode

    bad: list[str] = []
    checked = 0
    for rid, h, w, targets in zip(table["record_id"].to_pylist(), table["height"].to_pylist(),
                                  table["width"].to_pylist(), table["targets"].to_pylist(), strict=True):
        for t in targets or ():
            rle = t.get("mask_rle")
            if not rle:
                continue
            checked += 1
            try:
                mask = coco_rle_decode(rle)
            except MaskError as e:
                bad.append(f"{rid}/{t['target_id']}: {e}")
                continue
            if mask.shape != (h, w):
                bad.append(f"{rid}/{t['target_id']}: mask {mask.shape} on a {h}x{w} image")
            elif t.get("area_px") is not None and abs(float(mask.sum()) - float(t["area_px"])) > 0.5:
                bad.append(f"{rid}/{t['target_id']}: area_px {t['area_px']} but mask has {int(mask.sum())} px")
    return CheckOutcome("masks_decode_to_image_size", not bad,
                        f"{len(bad)} of {checked} mask(s) do not decode to their image", bad[:5])


def patients_in_one_split_across(frames: list[pd.DataFrame]) -> CheckOutcome:
    """The same check over several tables together (2D slice records and their volumes)."""
    cols = ["source", "patient_id", "split"]
    parts = [f[cols] for f in frames if f is not None and not f.empty and set(cols) <= set(f.columns)]
    if not parts:
        return CheckOutcome("patients_in_one_split_across_tables", True, "no patients")
    out = patients_in_one_split(pd.concat(parts, ignore_index=True))
    out.name = "patients_in_one_split_across_tables"
    return out


def volume_labels_named(files: list, max_voxels: int = 256 << 20) -> CheckOutcome:
    """Each label map's non-zero values are all named in ``label_names`` and its image is finite."""
    import io

    import numpy as np

    from shardsmith.validation.frames import iter_rows

    bad: list[str] = []
    for row in iter_rows(files, ["record_id", "image_npy", "label_npy", "label_names"], batch_size=2):
        rid = row["record_id"]
        try:
            img = np.load(io.BytesIO(row["image_npy"]), allow_pickle=False) if row.get("image_npy") else None
            lab = np.load(io.BytesIO(row["label_npy"]), allow_pickle=False) if row.get("label_npy") else None
        except (ValueError, OSError) as e:
            bad.append(f"{rid}: array does not load ({e})")
            continue
        if img is not None and img.size <= max_voxels and img.dtype.kind == "f" and not np.isfinite(img).all():
            bad.append(f"{rid}: image has NaN/inf voxels")
        if lab is not None and lab.size <= max_voxels:
            named = {n["value"] for n in row.get("label_names") or ()}
            unnamed = sorted(set(np.unique(lab).tolist()) - named - {0})
            if unnamed:
                bad.append(f"{rid}: label values {unnamed[:5]} have no name")
    return CheckOutcome("volume_labels_named", not bad, f"{len(bad)} volume(s) with unnamed labels or bad voxels",
                        bad[:5])


# ------------------------------------------------------------------------------------ werewolf
OVERLAP_TOLERANCE_S = 1.0  # people talk over each other a little; more than this is a timing error


def utterances_do_not_overlap(utterances: pd.DataFrame, tolerance_s: float = OVERLAP_TOLERANCE_S) -> CheckOutcome:
    """Within a game, consecutive utterances (by ``order``) start no earlier than the previous
    one ends minus the tolerance, and ``order`` follows time."""
    bad: list[str] = []
    df = utterances.dropna(subset=["start_s"]).sort_values(["game_id", "order"])
    for gid, g in df.groupby("game_id", sort=True):
        prev_end = prev_start = None
        prev_id = None
        for uid, start, end in zip(g["utterance_id"], g["start_s"], g["end_s"], strict=True):
            if prev_start is not None and start < prev_start - tolerance_s:
                bad.append(f"{gid}: {uid} starts at {start:.2f}s, before the previous one ({prev_start:.2f}s)")
            elif prev_end is not None and start < prev_end - tolerance_s:
                bad.append(f"{gid}: {uid} starts at {start:.2f}s, {prev_end - start:.2f}s before {prev_id} ends")
            prev_start = start
            prev_id = uid
            prev_end = end if end == end and end is not None else None
    return CheckOutcome("utterances_do_not_overlap", not bad,
                        f"{len(bad)} utterance(s) overlap their predecessor by more than {tolerance_s:g}s", bad[:5])


def votes_reference_roster(votes: pd.DataFrame, seats: pd.DataFrame) -> CheckOutcome:
    """Every vote's game exists and its voter and target sit in that game's roster."""
    roster = {(g, int(s)) for g, s in zip(seats["game_id"], seats["seat"], strict=True) if s == s and s is not None}
    games = set(seats["game_id"])
    bad = []
    for gid, day, voter, target in zip(votes["game_id"], votes["day"], votes["voter_seat"], votes["target_seat"],
                                       strict=True):
        if gid not in games:
            bad.append(f"{gid}: game not in games (or has no seats)")
            continue
        for role, seat in (("voter", voter), ("target", target)):
            if seat is not None and seat == seat and (gid, int(seat)) not in roster:
                bad.append(f"{gid} day {day}: {role} seat {int(seat)} is not in the roster")
    return CheckOutcome("votes_reference_roster", not bad, f"{len(bad)} vote(s) reference unknown seats", bad[:5])


def utterance_times_inside_media(utterances: pd.DataFrame, games: pd.DataFrame,
                                 tolerance_s: float = 0.5) -> CheckOutcome:
    """Utterance times lie inside the game's media ([0, duration]) where the duration is known."""
    duration = {g: d for g, d in zip(games["game_id"], games["media_duration_s"], strict=True)
                if d is not None and d == d}
    bad = []
    for uid, gid, start, end in zip(utterances["utterance_id"], utterances["game_id"], utterances["start_s"],
                                    utterances["end_s"], strict=True):
        d = duration.get(gid)
        if d is None or start is None or start != start:
            continue
        last = end if end is not None and end == end else start
        if start < -tolerance_s or last > d + tolerance_s:
            bad.append(f"{gid}: {uid} [{start:.2f}, {last:.2f}]s outside the {d:.2f}s media")
    return CheckOutcome("utterance_times_inside_media", not bad,
                        f"{len(bad)} utterance(s) outside their media", bad[:5])


def _value(x):
    """A frame cell as a plain Python value: NaN / NA -> None, whole floats (nullable ints) -> int."""
    if x is None or (not isinstance(x, (list, tuple, str)) and pd.isna(x)):
        return None
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def decision_context_before_vote(decisions: pd.DataFrame, context: pd.DataFrame, utterances: pd.DataFrame,
                                 phases: pd.DataFrame | None) -> CheckOutcome:
    """No decision's context holds a line said after the vote.

    Re-derived from the utterances and the games' phases, not from the decision's own time columns:
    every context line exists in the same game and is not post-game; it starts before the vote's day
    ends (``werewolf.decisions.day_end_s`` on the game's phases); and where the vote names a cut-off
    line, it comes before that line in utterance order and starts no later than it.
    """
    from shardsmith.werewolf.decisions import day_end_s

    utt = {u: (g, _value(o), _value(t), p) for u, g, o, t, p in zip(
        utterances["utterance_id"], utterances["game_id"], utterances["order"], utterances["start_s"],
        utterances["phase"], strict=True)}
    game_phases: dict[str, list[dict]] = {}
    if phases is not None:
        for g, name, start, end in zip(phases["game_id"], phases["name"], phases["start_s"], phases["end_s"],
                                       strict=True):
            game_phases.setdefault(g, []).append({"name": name, "start_s": _value(start), "end_s": _value(end)})
    vote = {d: (g, _value(day), _value(cut)) for d, g, day, cut in zip(
        decisions["decision_id"], decisions["game_id"], decisions["day"], decisions["cut_off_utterance_id"],
        strict=True)}
    bad: list[str] = []
    ends: dict[str, float | None] = {}
    for did, uid in zip(context["decision_id"], context["utterance_id"], strict=True):
        gid, day, cut_id = vote.get(did, (None, None, None))
        u = utt.get(uid)
        if gid is None or u is None or u[0] != gid:
            bad.append(f"{did}: context {uid} is not an utterance of {gid}")
            continue
        _, order, start, phase = u
        if phase == "post_game":
            bad.append(f"{did}: context {uid} is post-game")
        if did not in ends:
            ends[did] = day_end_s(sorted(game_phases.get(gid, []), key=lambda p: (p["start_s"] is None,
                                                                                  p["start_s"] or 0.0)), day)
        end = ends[did]
        if end is not None and start is not None and start >= end:
            bad.append(f"{did}: context {uid} starts at {start:.2f}s, after day {day} ends ({end:.2f}s)")
        cut = utt.get(cut_id) if cut_id else None
        if cut is not None and cut[0] == gid:
            if order is not None and cut[1] is not None and order >= cut[1]:
                bad.append(f"{did}: context {uid} (order {order}) is not before cut-off {cut_id} (order {cut[1]})")
            if start is not None and cut[2] is not None and start > cut[2]:
                bad.append(f"{did}: context {uid} starts at {start:.2f}s, after the vote ({cut[2]:.2f}s)")
    return CheckOutcome("decision_context_before_vote", not bad,
                        f"{len(bad)} context line(s) said after their vote", bad[:5])


def decisions_cover_votes(decisions: pd.DataFrame, votes: pd.DataFrame) -> CheckOutcome:
    """Exactly one decision per vote: the (game, day, voter, vote source) keys agree as multisets."""
    want = Counter((g, _value(d), _value(v), s) for g, d, v, s in zip(
        votes["game_id"], votes["day"], votes["voter_seat"], votes["source"], strict=True))
    have = Counter((g, _value(d), _value(v), s) for g, d, v, s in zip(
        decisions["game_id"], decisions["day"], decisions["voter_seat"], decisions["vote_source"], strict=True))
    missing, extra = want - have, have - want
    examples = [f"vote without decision: {k}" for k in list(missing)[:3]] + \
        [f"decision without vote: {k}" for k in list(extra)[:3]]
    return CheckOutcome("decisions_cover_votes", not missing and not extra,
                        f"{sum(want.values())} vote(s), {sum(have.values())} decision(s); "
                        f"{sum(missing.values())} missing, {sum(extra.values())} extra", examples)


def role_items_cover_roster(items: pd.DataFrame, seats: pd.DataFrame) -> CheckOutcome:
    """Every seat with a role in a game that has items has exactly one ``role_inference`` item."""
    have = Counter((g, _value(s)) for g, s in zip(items["game_id"], items["seat"], strict=True))
    games = set(items["game_id"])
    want = Counter((g, _value(s)) for g, s, r in zip(seats["game_id"], seats["seat"], seats["role"], strict=True)
                   if g in games and _value(r) is not None)
    missing, extra = want - have, have - want
    examples = [f"seat without item: {k}" for k in list(missing)[:3]] + \
        [f"item without a seat: {k}" for k in list(extra)[:3]]
    return CheckOutcome("role_items_cover_roster", not missing and not extra,
                        f"{sum(missing.values())} seat(s) without an item, {sum(extra.values())} extra item(s)",
                        examples)


def role_items_list_the_seats_lines(items: pd.DataFrame, said: pd.DataFrame, utterances: pd.DataFrame) -> CheckOutcome:
    """Each item lists exactly its seat's in-game utterances: none of another seat, none post-game, none left out."""
    speaker = {u: (g, _value(s), p) for u, g, s, p in zip(
        utterances["utterance_id"], utterances["game_id"], utterances["speaker_seat"], utterances["phase"],
        strict=True)}
    bad: list[str] = []
    listed: dict[tuple, set[str]] = {}
    for iid, gid, seat, uid in zip(said["item_id"], said["game_id"], said["seat"], said["utterance_id"],
                                   strict=True):
        seat = _value(seat)
        listed.setdefault((gid, seat), set()).add(uid)
        u = speaker.get(uid)
        if u is None or u[0] != gid or u[1] != seat:
            bad.append(f"{iid}: {uid} is not said by seat {seat} of {gid}")
        elif u[2] == "post_game":
            bad.append(f"{iid}: {uid} is post-game")
    keys = {(g, _value(s)) for g, s in zip(items["game_id"], items["seat"], strict=True)}
    for uid, (gid, seat, phase) in speaker.items():
        if (gid, seat) in keys and phase != "post_game" and uid not in listed.get((gid, seat), set()):
            bad.append(f"{gid} seat {seat}: {uid} is not listed")
    return CheckOutcome("role_items_list_the_seats_lines", not bad,
                        f"{len(bad)} utterance(s) listed wrongly or left out", bad[:5])


def werewolf_integrity(frames: dict[str, pd.DataFrame]) -> list[CheckOutcome]:
    """Every check the Werewolf tables declare (``TableSpec.checks``), on frames of several tables;
    a check whose frames are absent is left out."""
    from shardsmith.schemas.tables import COLLECTION_TABLES, TABLES
    from shardsmith.validation.checks import CheckInput, run_checks

    names = [n for t in COLLECTION_TABLES["werewolf"] for n in TABLES[t].checks]
    return run_checks(names, CheckInput(frames))
