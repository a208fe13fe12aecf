"""Hashes of media are streamed: a video is never read whole into memory to hash it.

The file here is 64 MiB (sparse on disk); reading it whole would allocate at least that much, and
tracemalloc sees every Python-level allocation, including the read buffers.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from shardsmith.media.audio import media_sha256
from shardsmith.sources.werewolf.base import sha256_files

SIZE = 64 << 20


def _big_file(path: Path) -> Path:
    with open(path, "wb") as fh:
        fh.write(b"head")
        fh.truncate(SIZE)
        fh.seek(SIZE - 4)
        fh.write(b"tail")
    return path


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_hashes_stream_and_match_whole_file_digests(tmp_path: Path) -> None:
    video = _big_file(tmp_path / "game.mp4")
    sidecar = tmp_path / "game.json"
    sidecar.write_text('{"game_id": "game"}')
    digest, peak = _peak(lambda: media_sha256(video))
    assert peak < SIZE // 8, f"peak {peak} bytes while hashing a {SIZE}-byte file"
    combined, peak2 = _peak(lambda: sha256_files([video, sidecar]))
    assert peak2 < SIZE // 8
    # same digests as hashing the bytes directly: fingerprints recorded earlier stay valid
    assert digest == hashlib.sha256(video.read_bytes()).hexdigest()
    assert combined == hashlib.sha256(video.read_bytes() + sidecar.read_bytes()).hexdigest()
    assert sha256_files([]) == hashlib.sha256().hexdigest()
