"""Damaged media: bytes of audio packets overwritten in the middle of an MP4, and a timestamp jump.

The fixtures are made here: speech (espeak-ng, or the real jfk.flac for the transcription check)
muxed into an MP4 with AAC audio, then the bytes of the audio packets inside a one-second span are
overwritten with noise in the file itself. The decoder must keep every other second of speech, at
its original time, and say what it repaired.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from skip_policy import need_tool

from shardsmith.media.audio import SAMPLE_RATE, AudioError, decode_audio, decode_audio_checked

BAD_START_S, BAD_END_S = 4.0, 5.0
TEXT = (
    "The village wakes up. Seat one says seat two is a werewolf. Seat two says seat one is lying. "
    "Seat three will vote for seat two. The host counts the votes and the village wins the game."
)


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory) -> np.ndarray:
    exe = need_tool("espeak-ng", "the Debian package (scripts/bootstrap.sh installs it) makes the synthetic speech")
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([exe, "-v", "en-us+m1", "-s", "150", "-w", str(wav), TEXT], check=True)
    samples = decode_audio(wav)
    assert len(samples) > 9 * SAMPLE_RATE  # long enough to have intact speech on both sides
    return samples


def mux_aac(path: Path, samples: np.ndarray, container: str = "mp4", jump_after_s: float | None = None,
            jump_s: float = 0.0) -> Path:
    """Speech as AAC in ``container``; packets after ``jump_after_s`` get their timestamps moved by ``jump_s``."""
    import av

    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream("aac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        pcm = np.asarray(samples, np.float32).reshape(1, -1)

        def mux(packets) -> None:
            for p in packets:
                if jump_after_s is not None and p.pts is not None and p.pts * p.time_base >= jump_after_s:
                    shift = int(jump_s / p.time_base)
                    p.pts += shift
                    p.dts += shift
                out.mux(p)

        for i in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, i : i + 1024]), format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
            mux(stream.encode(frame))
        mux(stream.encode(None))
    return path


def corrupt_audio_packets(path: Path, start_s: float, end_s: float, seed: int = 0) -> int:
    """Overwrite, in the file, the bytes of every audio packet that starts inside [start_s, end_s)."""
    import av

    with av.open(str(path)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.audio[0])
                 if p.size and p.pts is not None and start_s <= float(p.pts * p.time_base) < end_s]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos, size in spans:
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return len(spans)


def _corr(a: np.ndarray, b: np.ndarray, start_s: float, end_s: float) -> float:
    i, j = int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE)
    return float(np.corrcoef(a[i:j], b[i:j])[0, 1])


def test_corrupted_packets_keep_the_intact_speech_in_place(espeak_speech: np.ndarray, tmp_path: Path) -> None:
    video = mux_aac(tmp_path / "game.mp4", espeak_speech)
    clean = decode_audio(video)
    assert corrupt_audio_packets(video, BAD_START_S, BAD_END_S) >= 10
    got = decode_audio_checked(video)
    assert got.bad_packets >= 10 and got.gap_filled_s > 0.5
    assert abs(got.duration_s - len(clean) / SAMPLE_RATE) < 0.1
    # outside the damaged second (plus the AAC frame overlap at its edges) the audio is the same audio
    assert _corr(got.samples, clean, 0.0, BAD_START_S - 0.2) > 0.99
    assert _corr(got.samples, clean, BAD_END_S + 0.2, len(clean) / SAMPLE_RATE) > 0.99
    assert any("undecodable" in w for w in got.warnings())


def test_forward_timestamp_jump_does_not_insert_silence(espeak_speech: np.ndarray, tmp_path: Path) -> None:
    """A 10-minute jump in the timestamps is a broken clock, not ten minutes of missing audio."""
    video = mux_aac(tmp_path / "jump.mkv", espeak_speech, container="matroska", jump_after_s=5.0, jump_s=600.0)
    got = decode_audio_checked(video)
    assert got.timestamp_jumps == 1 and got.gap_filled_s == 0.0
    n = len(espeak_speech) / SAMPLE_RATE
    assert abs(got.duration_s - n) < 0.2
    assert _corr(got.samples, espeak_speech, 0.5, n - 0.5) > 0.99


def test_mostly_broken_audio_is_refused(espeak_speech: np.ndarray, tmp_path: Path) -> None:
    video = mux_aac(tmp_path / "ruined.mp4", espeak_speech)
    corrupt_audio_packets(video, 0.0, 1e9)
    with pytest.raises(AudioError) as err:
        decode_audio(video)
    assert err.value.reason == "decode_failed" and "undecodable" in str(err.value)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def test_real_speech_through_corrupted_mp4_is_transcribed(real_samples: Path, tmp_path: Path) -> None:
    """The real jfk.flac: every word spoken outside the damaged second is still transcribed."""
    from shardsmith.speech.select import get_transcriber

    speech = decode_audio(real_samples / "speech" / "jfk.flac")
    video = mux_aac(tmp_path / "jfk.mp4", speech)
    tr = get_transcriber("faster-whisper")
    clean = tr.transcribe(decode_audio(video))
    corrupt_audio_packets(video, BAD_START_S, BAD_END_S)
    damaged = tr.transcribe(decode_audio(video))
    intact = [w for s in clean.segments for w in s.words
              if w.end < BAD_START_S - 0.3 or w.start > BAD_END_S + 0.3]
    heard = set(_words(damaged.text))
    expected = [x for w in intact for x in _words(w.word)]
    missing = [x for x in expected if x not in heard]
    print(f"clean={clean.text!r} damaged={damaged.text!r} missing={missing}")
    assert len(expected) >= 10 and len(missing) <= 1
