"""Audio from media files: decode to 16 kHz mono float32, encode FLAC clips, hash files.

PyAV bundles FFmpeg, so no system ffmpeg is needed. Failures raise AudioError with a short
machine ``reason`` (``no_audio_stream``, ``empty_media``, ``decode_failed``) that callers turn into a
quarantined game.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shardsmith.errors import ShardsmithError
from shardsmith.hashing import sha256_file

SAMPLE_RATE = 16_000


class AudioError(ShardsmithError):
    """Why a media file yields no usable audio; ``reason`` is a short code for quarantine rows."""

    reason_in_str = True

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)


def media_sha256(path: str | Path) -> str:
    """SHA-256 of a media file, streamed so a long video never sits in memory."""
    return sha256_file(path)


# How the decoder treats a damaged stream. Frames carry timestamps; when a frame starts later than
# the audio decoded so far (lost or undecodable packets), the hole is filled with silence so later
# speech stays at its true time. Holes longer than MAX_GAP_FILL_S, or timestamps that run backwards
# by more than TIMESTAMP_SLACK_S, are taken as broken timestamps: the frame is appended where the
# audio stands and the clock re-anchored there. A file where more than MAX_BAD_PACKET_SHARE of the
# packets cannot be decoded is refused rather than published as mostly silence.
GAP_TOLERANCE_S = 0.005
TIMESTAMP_SLACK_S = 0.05
MAX_GAP_FILL_S = 5.0
MAX_BAD_PACKET_SHARE = 0.5
MAX_DEMUX_RETRIES = 16


@dataclass
class DecodedAudio:
    """Samples plus what the decoder had to repair on the way (empty counts for a clean file)."""

    samples: np.ndarray
    sample_rate: int
    packets: int = 0
    bad_packets: int = 0  # packets the decoder rejected (their time becomes silence)
    demux_errors: int = 0  # read errors in the container itself, skipped
    invalid_frames: int = 0  # frames with no samples or no sample rate
    gap_filled_s: float = 0.0  # silence inserted for missing audio
    timestamp_jumps: int = 0  # frames whose timestamps were ignored
    format_changes: int = 0  # mid-stream changes of sample format, layout or rate
    first_error: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def warnings(self) -> list[str]:
        """One human line per kind of repair, for a games row's ``warnings``."""
        out = []
        if self.bad_packets:
            out.append(
                f"audio: {self.bad_packets} of {self.packets} packets undecodable ({self.first_error}); "
                f"{self.gap_filled_s:.2f} s of silence in their place"
            )
        elif self.gap_filled_s:
            out.append(f"audio: {self.gap_filled_s:.2f} s of missing audio filled with silence")
        if self.demux_errors:
            out.append(f"audio: {self.demux_errors} container read errors skipped")
        if self.timestamp_jumps:
            out.append(f"audio: {self.timestamp_jumps} broken timestamps ignored (audio kept in stream order)")
        if self.invalid_frames:
            out.append(f"audio: {self.invalid_frames} empty or invalid frames skipped")
        if self.format_changes:
            out.append(f"audio: sample format changed {self.format_changes} times mid-stream")
        return out


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """First audio stream of ``path`` as mono float32 in [-1, 1] at ``sample_rate`` (see decode_audio_checked)."""
    return decode_audio_checked(path, sample_rate).samples


def decode_audio_checked(path: str | Path, sample_rate: int = SAMPLE_RATE) -> DecodedAudio:
    """Decode packet by packet so that one bad packet costs its own few milliseconds, not the game.

    Undecodable packets and container read errors are skipped and counted, frames are resampled in
    stream order (timestamps only place silence where audio is missing), and a change of input
    format mid-stream starts a new resampler instead of failing.
    """
    import av  # imported here so schema-only users never load FFmpeg

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        raise AudioError("empty_media", f"{path.name} is missing or has zero bytes")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # FFmpeg raises many error types for a corrupt file
        raise AudioError("decode_failed", f"{path.name}: {exc}") from exc
    result = DecodedAudio(np.zeros(0, np.float32), sample_rate)
    try:
        if not container.streams.audio:
            raise AudioError("no_audio_stream", f"{path.name} has no audio stream")
        stream = container.streams.audio[0]
        chunks = _decode_stream(av, container, stream, sample_rate, result)
    finally:
        container.close()
        gc.collect()  # PyAV's resampler holds buffers until collected
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if result.packets and result.bad_packets > MAX_BAD_PACKET_SHARE * result.packets:
        raise AudioError(
            "decode_failed",
            f"{path.name}: {result.bad_packets} of {result.packets} audio packets undecodable ({result.first_error})",
        )
    if samples.size == 0:
        detail = f" ({result.first_error})" if result.first_error else ""
        raise AudioError(
            "decode_failed" if result.first_error else "empty_media",
            f"{path.name}: the audio stream decodes to no samples{detail}",
        )
    result.samples = np.clip(samples, -1.0, 1.0)
    return result


def _packets(av: Any, container: Any, stream: Any, result: DecodedAudio) -> Iterator[Any]:
    """Packets of one stream; a read error skips ahead (bounded) instead of ending the file."""
    failures = 0
    while True:
        try:
            for packet in container.demux(stream):
                failures = 0
                yield packet
            return
        except av.error.FFmpegError as exc:
            result.demux_errors += 1
            result.first_error = result.first_error or str(exc)
            failures += 1
            if failures > MAX_DEMUX_RETRIES:
                return


def _decode_stream(av: Any, container: Any, stream: Any, rate: int, result: DecodedAudio) -> list[np.ndarray]:
    chunks: list[np.ndarray] = []
    resampler: Any = None
    key: tuple | None = None
    clock = 0.0  # seconds of input audio placed so far, silence included
    origin: float | None = None  # stream time that corresponds to clock == 0

    def flush_resampler() -> None:
        nonlocal resampler
        if resampler is not None:
            chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))
            resampler = None

    def place(frame: Any) -> None:
        nonlocal resampler, key, clock, origin
        if frame.samples <= 0 or not frame.sample_rate:
            result.invalid_frames += 1
            return
        t = frame.time
        if t is not None:
            if origin is None:
                origin = t
            ahead = (t - origin) - clock
            if GAP_TOLERANCE_S < ahead <= MAX_GAP_FILL_S:
                flush_resampler()  # silence must land after what the resampler still holds
                chunks.append(np.zeros(int(round(ahead * rate)), np.float32))
                result.gap_filled_s += ahead
                clock += ahead
            elif ahead > MAX_GAP_FILL_S or ahead < -TIMESTAMP_SLACK_S:
                result.timestamp_jumps += 1
                origin = t - clock
        fkey = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key is not None and fkey != key:
            result.format_changes += 1
            flush_resampler()
        if resampler is None:
            resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=rate)
        key = fkey
        frame.pts = None  # resample continuously: placement above already used the timestamp
        try:
            chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(frame))
        except (av.error.FFmpegError, ValueError) as exc:  # a frame no resampler accepts (garbage layout)
            result.invalid_frames += 1
            result.first_error = result.first_error or f"invalid frame: {exc}"
            resampler, key = None, None
            return
        clock += frame.samples / frame.sample_rate

    flushed = False
    for packet in _packets(av, container, stream, result):
        if packet.size:
            result.packets += 1
        else:
            flushed = True
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if packet.size:
                result.bad_packets += 1
                result.first_error = result.first_error or str(exc)
            continue
        for frame in frames:
            place(frame)
    if not flushed:  # a read error ended the file early: take what the decoder still holds
        try:
            for frame in stream.codec_context.decode(None):
                place(frame)
        except av.error.FFmpegError:
            pass
    flush_resampler()
    return chunks


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
