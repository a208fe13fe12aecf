"""Audio from media files: decode to 16 kHz mono float32, encode FLAC clips, hash files.

PyAV bundles FFmpeg, so no system ffmpeg is needed. Failures raise AudioError with a short
machine ``reason`` (``no_audio_stream``, ``empty_media``, ``decode_failed``) that callers turn into a
quarantined game.
"""

from __future__ import annotations

import gc
import io
from pathlib import Path

import numpy as np

from shardsmith.hashing import sha256_file

SAMPLE_RATE = 16_000


class AudioError(Exception):
    """Why a media file yields no usable audio; ``reason`` is a short code for quarantine rows."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def media_sha256(path: str | Path) -> str:
    """SHA-256 of a media file, streamed so a long video never sits in memory."""
    return sha256_file(path)


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """First audio stream of ``path`` as mono float32 in [-1, 1] at ``sample_rate``."""
    import av  # imported here so schema-only users never load FFmpeg

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        raise AudioError("empty_media", f"{path.name} is missing or has zero bytes")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # FFmpeg raises many error types for a corrupt file
        raise AudioError("decode_failed", f"{path.name}: {exc}") from exc
    try:
        if not container.streams.audio:
            raise AudioError("no_audio_stream", f"{path.name} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise AudioError("decode_failed", f"{path.name}: {exc}") from exc
    finally:
        container.close()
        gc.collect()  # PyAV's resampler holds buffers until collected
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioError("empty_media", f"{path.name}: the audio stream decodes to no samples")
    return np.clip(samples, -1.0, 1.0)


def encode_flac(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit FLAC bytes; bit-exact flags keep the bytes identical across runs."""
    import av

    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("flac", rate=sample_rate, options={"flags": "+bitexact"})
        stream.layout = "mono"
        stream.format = "s16"
        step = 4096
        for i in range(0, max(len(pcm), 1), step):
            block = pcm[i : i + step]
            if block.size == 0:
                break
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def slice_seconds(
    samples: np.ndarray, start_s: float, end_s: float, sample_rate: int = SAMPLE_RATE, pad_s: float = 0.0
) -> np.ndarray:
    """Samples between two times (clamped to the signal), with optional padding on both sides."""
    a = max(0, int(round((start_s - pad_s) * sample_rate)))
    b = min(len(samples), int(round((end_s + pad_s) * sample_rate)))
    return samples[a : max(a, b)]
