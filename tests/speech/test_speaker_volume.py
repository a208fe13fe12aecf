"""Loudness must not leak into speaker identity: a voice heard at -6 dB and at -30 dB is one speaker.

The game is synthesised here from the demo's five espeak-ng voices, each speaking twice; seat 1's
second turn is 24 dB quieter than everything else (a player leaning away from the microphone). The
encoder reads linear mel power, so without the volume normalisation that quiet turn forms a cluster
of its own and two other voices are merged to make room (measured: seats 2 and 3 fused).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from skip_policy import need_tool

from shardsmith.speech.embeddings import TARGET_DBFS, normalize_volume

SR = 16_000
LINES = [
    "Seat one here. I checked seat two last night and I am sure of it.",
    "I am only a villager and I do not trust that story at all.",
    "Please listen, the werewolf is sitting right across from me.",
]


def _dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x.astype(np.float64)))))


def test_normalize_volume_raises_quiet_windows_only() -> None:
    rng = np.random.default_rng(1)
    quiet = (0.001 * rng.standard_normal(SR)).astype(np.float32)  # about -60 dBFS
    loud = (0.3 * rng.standard_normal(SR)).astype(np.float32)  # about -10 dBFS
    assert _dbfs(normalize_volume(quiet)) == pytest.approx(TARGET_DBFS, abs=0.01)
    assert np.array_equal(normalize_volume(loud), loud)  # never lowered
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(normalize_volume(silent), silent)
    assert normalize_volume(np.zeros(0, np.float32)).size == 0


@pytest.fixture(scope="module")
def game() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    need_tool("espeak-ng", "the Debian package (scripts/bootstrap.sh installs it) makes the synthetic voices")
    from shardsmith.demo.werewolf_demo import VOICES, _espeak_wav, _trim, _wav_to_16k

    pieces = [np.zeros(SR // 2, np.float32)]
    truth: list[tuple[float, float, str]] = []
    t = 0.5
    for k, (speaker, round_) in enumerate((s, r) for r in range(2) for s in VOICES):
        clip = _trim(_wav_to_16k(_espeak_wav(LINES[k % 3], *VOICES[speaker])))
        gain_db = -30.0 if (speaker == "1" and round_ == 1) else -6.0
        clip = (clip / np.abs(clip).max() * 10 ** (gain_db / 20)).astype(np.float32)
        truth.append((t, t + len(clip) / SR, speaker))
        pieces += [clip, np.zeros(int(0.6 * SR), np.float32)]
        t += len(clip) / SR + 0.6
    return np.concatenate(pieces), truth


def test_quiet_and_loud_turns_of_one_voice_stay_one_speaker(game) -> None:
    from shardsmith.speech.speakers import diarize

    samples, truth = game
    d = diarize(samples, n_speakers=5)
    pairs: Counter = Counter()
    for (a, b), label in zip(d.windows, d.labels, strict=True):
        speaker = next((s for u, v, s in truth if u <= (a + b) / 2 <= v), None)
        pairs[(speaker, int(label))] += 1
    clusters_of = {s: {c for (sp, c) in pairs if sp == s} for s, _ in pairs}
    speakers_of = {c: {sp for (sp, c2) in pairs if c2 == c} for _, c in pairs}
    quiet = [(a, b) for a, b, s in truth if s == "1"][1]
    assert any(quiet[0] <= (a + b) / 2 <= quiet[1] for a, b in d.windows), "the quiet turn was not heard"
    assert clusters_of["1"] == {next(iter(clusters_of["1"]))}, f"seat 1 split by loudness: {pairs}"
    assert all(len(v) == 1 for v in speakers_of.values()), f"voices merged: {pairs}"
    assert d.n_clusters == 5
