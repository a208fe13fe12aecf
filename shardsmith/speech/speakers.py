"""Who said what: turn transcript words into speaker-attributed utterances.

Two routes, recorded per utterance in ``speaker_source``:

- ``turns``: human-verified speaker turns from the sidecar. Each word goes to the turn that
  overlaps it most (the nearest turn when none overlaps, then marked unverified).
- ``diarization``: no turns. Speech regions (Silero VAD, shipped in faster-whisper) are cut into
  1.6 s windows, embedded with the Resemblyzer d-vector encoder (``embeddings.py``), clustered
  agglomeratively (average linkage, cosine) into as many clusters as there are seats (+1 for the
  host). Clusters become seats through what people say: self-introductions ("seat three here",
  "3 号...") and the host's turn calls ("seat two, please speak" -> the next speaker is seat 2),
  assigned one-to-one with the Hungarian method. Utterances are unverified and carry a confidence
  (window cluster margin x share of seat evidence); a cluster without evidence keeps no seat.

Consecutive words of one speaker form an utterance; a pause longer than ``MAX_GAP_S`` also splits.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shardsmith.speech.base import Transcript, Word

SR = 16_000
MAX_GAP_S = 1.5
WINDOW_S = 3.0
HOP_S = 1.5
HOST = "host"


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    seat: int | None  # None together with is_host for the host
    is_host: bool = False


@dataclass
class AttributedUtterance:
    start: float
    end: float
    text: str
    words: list[Word]
    seat: int | None
    is_host: bool
    label: str | None
    speaker_source: str
    confidence: float | None
    verified: bool
    asr_confidence: float | None
    extra: dict[str, Any] = field(default_factory=dict)


def transcript_units(transcript: Transcript) -> list[Word]:
    """Words with times; a segment without word timings (unaligned whisperx) counts as one unit."""
    units: list[Word] = []
    for seg in transcript.segments:
        if seg.words:
            units.extend(w for w in seg.words if w.end >= w.start)
        elif seg.text.strip():
            prob = float(np.exp(seg.avg_logprob)) if seg.avg_logprob is not None else None
            units.append(Word(seg.text, seg.start, seg.end, prob))
    return units


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _join(words: list[Word]) -> str:
    text = "".join(w.word for w in words).strip()
    return re.sub(r"\s+", " ", text)


def _asr_conf(words: list[Word]) -> float | None:
    probs = [w.probability for w in words if w.probability is not None]
    return float(np.mean(probs)) if probs else None


def _group(units: list[Word], keys: list[Any]) -> list[tuple[Any, list[int]]]:
    """Runs of consecutive units with one key, split at long pauses."""
    runs: list[tuple[Any, list[int]]] = []
    for i, (u, k) in enumerate(zip(units, keys, strict=True)):
        if runs and runs[-1][0] == k and u.start - units[runs[-1][1][-1]].end <= MAX_GAP_S:
            runs[-1][1].append(i)
        else:
            runs.append((k, [i]))
    return runs


def attribute_turns(transcript: Transcript, turns: list[Turn]) -> list[AttributedUtterance]:
    """Words -> the sidecar turn overlapping them most (verified); nearest turn otherwise (unverified)."""
    units = transcript_units(transcript)
    if not turns:
        raise ValueError("attribute_turns needs at least one turn")
    keys: list[int] = []
    overlapped: list[bool] = []
    for u in units:
        ov = [_overlap(u.start, u.end, t.start, t.end) for t in turns]
        best = int(np.argmax(ov))
        hit = ov[best] > 0 or turns[best].start <= u.start <= turns[best].end
        if not hit:  # word times are approximate: fall back to the nearest turn
            mid = (u.start + u.end) / 2
            best = int(np.argmin([min(abs(mid - t.start), abs(mid - t.end)) for t in turns]))
        keys.append(best)
        overlapped.append(hit)
    out = []
    for ti, idx in _group(units, keys):
        t = turns[ti]
        words = [units[i] for i in idx]
        share = float(np.mean([overlapped[i] for i in idx]))
        out.append(
            AttributedUtterance(
                start=words[0].start,
                end=words[-1].end,
                text=_join(words),
                words=words,
                seat=t.seat,
                is_host=t.is_host,
                label=HOST if t.is_host else f"seat {t.seat}",
                speaker_source="turns",
                confidence=round(share, 4),
                verified=share >= 0.5,
                asr_confidence=_asr_conf(words),
                extra={"turn_index": ti, "words_inside_turn": round(share, 4)},
            )
        )
    return out


# ---------------------------------------------------------------- diarization


@dataclass
class Diarization:
    windows: np.ndarray  # (n, 2) start/end seconds
    labels: np.ndarray  # (n,) cluster id per window
    margin: np.ndarray  # (n,) how clearly the window belongs to its cluster, 0..1
    n_clusters: int
    method: str = "resemblyzer-dvector+agglomerative-average-cosine"


def speech_regions(samples: np.ndarray, sr: int = SR) -> list[tuple[float, float]]:
    """Speech regions in seconds from Silero VAD; short pauses split turns apart."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(
        threshold=0.5, min_silence_duration_ms=300, speech_pad_ms=30, min_speech_duration_ms=200
    )
    return [(c["start"] / sr, c["end"] / sr) for c in get_speech_timestamps(samples, opts, sampling_rate=sr)]


def diarize(samples: np.ndarray, n_speakers: int, sr: int = SR, embedder: Any = None) -> Diarization:
    """Cluster 1.6 s speech windows into ``n_speakers`` voices."""
    from scipy.cluster.hierarchy import fcluster, linkage

    from shardsmith.speech.embeddings import get_embedder

    embedder = embedder or get_embedder()
    windows: list[tuple[float, float]] = []
    for a, b in speech_regions(samples, sr):
        if b - a <= WINDOW_S:
            windows.append((a, b))
            continue
        s = a
        while s + WINDOW_S < b:
            windows.append((s, s + WINDOW_S))
            s += HOP_S
        windows.append((max(a, b - WINDOW_S), b))
    if not windows:
        return Diarization(np.zeros((0, 2)), np.zeros(0, int), np.zeros(0), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = embedder.embed_many([samples[int(a * sr) : int(b * sr)] for a, b in windows])
    k = max(1, min(n_speakers, len(windows)))
    if len(windows) == 1:
        labels = np.zeros(1, int)
    else:
        z = linkage(emb, method="average", metric="cosine")
        labels = fcluster(z, t=k, criterion="maxclust") - 1
    labels = _relabel_by_first_appearance(labels)
    k = int(labels.max()) + 1
    cent = np.stack([emb[labels == c].mean(axis=0) for c in range(k)])
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-9)
    sims = emb @ cent.T
    own = sims[np.arange(len(labels)), labels]
    other = np.where(np.eye(k, dtype=bool)[labels], -np.inf, sims).max(axis=1) if k > 1 else own - 1.0
    margin = np.clip((own - other) * 2.0, 0.0, 1.0)
    return Diarization(np.asarray(windows), labels, margin, k)


def diarization_from_turns(turns: list[tuple[float, float, str]], method: str) -> Diarization:
    """A Diarization from an external diarizer's speaker turns (pyannote through whisperx).

    Labels are numbered by first appearance. Such diarizers give no per-turn score, so the margin
    says only whether the turn is clear: 1.0 when no other speaker's turn overlaps it, 0.5 when
    one does (crosstalk).
    """
    turns = sorted((float(a), float(b), str(lab)) for a, b, lab in turns if b > a)
    if not turns:
        return Diarization(np.zeros((0, 2)), np.zeros(0, int), np.zeros(0), 0, method)
    order: dict[str, int] = {}
    for _, _, lab in turns:
        order.setdefault(lab, len(order))
    windows = np.array([(a, b) for a, b, _ in turns], dtype=float)
    labels = np.array([order[lab] for _, _, lab in turns], dtype=int)
    margin = np.ones(len(turns))
    for i, (_, b, lab) in enumerate(turns):  # sorted by start: later overlapping turns start before b
        j = i + 1
        while j < len(turns) and turns[j][0] < b:
            if turns[j][2] != lab:
                margin[i] = margin[j] = 0.5
            j += 1
    return Diarization(windows, labels, margin, len(order), method)


def _relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    for lab in labels:
        order.setdefault(int(lab), len(order))
    return np.array([order[int(lab)] for lab in labels], dtype=int)


def _unit_cluster(d: Diarization, u: Word) -> tuple[int | None, float]:
    """The cluster whose windows cover the word most (weighted by margin), and its margin."""
    if len(d.labels) == 0:
        return None, 0.0
    ov = np.maximum(0.0, np.minimum(d.windows[:, 1], u.end) - np.maximum(d.windows[:, 0], u.start))
    if u.end <= u.start:
        ov = ((d.windows[:, 0] <= u.start) & (u.start <= d.windows[:, 1])).astype(float)
    if ov.sum() <= 0:
        mid = (u.start + u.end) / 2
        i = int(np.argmin(np.abs(d.windows.mean(axis=1) - mid)))
        return int(d.labels[i]), float(d.margin[i]) * 0.5
    score = np.zeros(d.n_clusters)
    np.add.at(score, d.labels, ov * (0.25 + d.margin))
    c = int(np.argmax(score))
    sel = (d.labels == c) & (ov > 0)
    return c, float(np.average(d.margin[sel], weights=ov[sel]))


_NUM_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "to": 2,
    "too": 2,
    "for": 4,
    "won": 1,
}
_NUM = r"(\d{1,2}|" + "|".join(sorted(_NUM_WORDS, key=len, reverse=True)) + r")"
# "seat" as small ASR models also hear it ("C-3 here", "sheet two"); a hyphen may join it to the number
_SEATWORD = r"(?:seat|sit|set|sheet|see|c|player|number|no\.?)"
_SELF_EN = re.compile(
    rf"^\W*(?:(?:hi|hello|ok|okay|so|well)\W+)?(?:i'?m\s+|i\s+am\s+|this\s+is\s+)?{_SEATWORD}[\s-]+{_NUM}\b",
    re.I,
)
_SELF_EN2 = re.compile(rf"\b(?:i'?m|i\s+am|this\s+is)\s+{_SEATWORD}[\s-]+{_NUM}\b", re.I)
_SELF_ZH = re.compile(r"^\W*(?:我是\s*)?(\d{1,2})\s*号")
_CALL_EN = re.compile(
    rf"\b{_SEATWORD}[\s-]+{_NUM}\W+(?:it\s+is\s+|it'?s\s+)?(?:please\s+)?(?:speak|go\s+ahead|your\s+turn)", re.I
)
_CALL_ZH = re.compile(r"(?:请\s*)?(\d{1,2})\s*号(?:玩家)?\s*(?:请)?发言")
_HOST_EN = re.compile(
    r"\b(?:night\s+falls|close\s+your\s+eyes|open\s+your\s+eyes|day\s+breaks|time\s+to\s+vote|"
    r"is\s+voted\s+out|village\s+wins|werewolves\s+win)\b",
    re.I,
)
_HOST_ZH = re.compile(r"天黑请闭眼|天亮了|请睁眼|请闭眼|开始投票|游戏结束")


def _num(tok: str) -> int | None:
    tok = tok.lower().rstrip(".")
    if tok.isdigit():
        return int(tok)
    return _NUM_WORDS.get(tok)


def self_reference(text: str) -> int | None:
    """The seat a speaker names as their own ("Seat three here", "I am player 2", "3 号预言家")."""
    for rx in (_SELF_EN, _SELF_EN2, _SELF_ZH):
        m = rx.search(text)
        if m:
            return _num(m.group(1))
    return None


def host_calls(text: str) -> list[int]:
    """Seats the host calls on to speak in this text."""
    return [
        n
        for m in list(_CALL_EN.finditer(text)) + list(_CALL_ZH.finditer(text))
        if (n := _num(m.group(1))) is not None
    ]


def is_host_speech(text: str) -> bool:
    return bool(_HOST_EN.search(text) or _HOST_ZH.search(text))


def map_clusters_to_seats(
    runs: list[tuple[int | None, str]], seats: list[int], has_host: bool
) -> dict[int, tuple[int | str, float]]:
    """cluster -> (seat or "host", share of evidence) from the text of consecutive speaker runs."""
    from scipy.optimize import linear_sum_assignment

    targets: list[int | str] = [*seats, HOST] if has_host else list(seats)
    col = {t: i for i, t in enumerate(targets)}
    clusters = sorted({c for c, _ in runs if c is not None})
    if not clusters:
        return {}
    row = {c: i for i, c in enumerate(clusters)}
    ev = np.zeros((len(clusters), len(targets)))
    for i, (c, text) in enumerate(runs):
        if c is None:
            continue
        own = self_reference(text)
        if own in col:
            ev[row[c], col[own]] += 2.0
        calls = host_calls(text)
        if calls:
            if has_host:
                ev[row[c], col[HOST]] += 1.0
            nxt = next(((c2, t2) for c2, t2 in runs[i + 1 :] if c2 is not None and c2 != c), None)
            if nxt is not None and calls[-1] in col:
                ev[row[nxt[0]], col[calls[-1]]] += 1.0
        if has_host and is_host_speech(text):
            ev[row[c], col[HOST]] += 1.0
    r, k = linear_sum_assignment(-ev)
    out: dict[int, tuple[int | str, float]] = {}
    for ri, ki in zip(r, k, strict=True):
        total = ev[ri].sum()
        if ev[ri, ki] > 0:
            out[clusters[ri]] = (targets[ki], float(ev[ri, ki] / total))
    return out


def attribute_diarization(
    transcript: Transcript,
    samples: np.ndarray,
    seats: list[int],
    has_host: bool,
    sr: int = SR,
    embedder: Any = None,
    diarization: Diarization | None = None,
) -> tuple[list[AttributedUtterance], Diarization, dict[int, tuple[int | str, float]]]:
    """Diarize (or take ``diarization`` from elsewhere), group words by cluster, map clusters to seats.

    Utterances are unverified.
    """
    units = transcript_units(transcript)
    d = diarization or diarize(samples, len(seats) + (1 if has_host else 0), sr, embedder)
    assigned = [_unit_cluster(d, u) for u in units]
    runs = _group(units, [c for c, _ in assigned])
    mapping = map_clusters_to_seats([(c, _join([units[i] for i in idx])) for c, idx in runs], seats, has_host)
    out = []
    for c, idx in runs:
        words = [units[i] for i in idx]
        target, share = mapping.get(c, (None, 0.0)) if c is not None else (None, 0.0)
        margin = float(np.mean([assigned[i][1] for i in idx]))
        out.append(
            AttributedUtterance(
                start=words[0].start,
                end=words[-1].end,
                text=_join(words),
                words=words,
                seat=target if isinstance(target, int) else None,
                is_host=target == HOST,
                label=None if c is None else f"SPEAKER_{c:02d}",
                speaker_source="diarization",
                confidence=round(share * (0.5 + 0.5 * margin), 4),
                verified=False,
                asr_confidence=_asr_conf(words),
                extra={
                    "cluster": c,
                    "cluster_margin": round(margin, 4),
                    "seat_evidence_share": round(share, 4),
                },
            )
        )
    return out, d, mapping


def evidence_summary(mapping: dict[int, tuple[int | str, float]]) -> dict[str, Any]:
    grouped: dict[str, list] = defaultdict(list)
    for c, (t, s) in sorted(mapping.items()):
        grouped[str(t)].append({"cluster": c, "share": round(s, 3)})
    return dict(grouped)
