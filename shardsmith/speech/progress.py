"""Transcription progress: seconds of audio done out of the total, and the real-time factor.

Backends call a ``ProgressCallback(done_s, total_s, wall_s)`` as they go; ``transcription_progress``
makes one that writes throttled lines to the ``shardsmith.progress`` logger (which the CLI prints)
and, when given, to a second sink such as a Dagster run log. The real-time factor is wall time over
audio time: 0.1 means an hour of audio takes six minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

ProgressCallback = Callable[[float, float, float], None]
progress_log = logging.getLogger("shardsmith.progress")


def real_time_factor(audio_s: float, wall_s: float) -> float | None:
    """Wall seconds per second of audio (None before any audio is done)."""
    return wall_s / audio_s if audio_s > 0 else None


def format_progress(label: str, done_s: float, total_s: float, wall_s: float) -> str:
    share = 100.0 * done_s / total_s if total_s > 0 else 100.0
    rtf = real_time_factor(done_s, wall_s)
    speed = f"real-time factor {rtf:.2f} ({1 / rtf:.1f}x real time)" if rtf else "real-time factor n/a"
    return f"{label}: {done_s:.1f}/{total_s:.1f} s of audio transcribed ({share:.0f} %), {speed}"


def transcription_progress(
    label: str, sink: Callable[[str], None] | None = None, every_s: float = 10.0
) -> ProgressCallback:
    """A callback that reports at most once per ``every_s`` wall seconds, and always at the end."""
    last = [float("-inf")]
    finished = [False]

    def report(done_s: float, total_s: float, wall_s: float) -> None:
        now = time.monotonic()
        done = done_s >= total_s
        if (not done and now - last[0] < every_s) or (done and finished[0]):
            return
        last[0], finished[0] = now, done
        msg = format_progress(label, done_s, total_s, wall_s)
        progress_log.info(msg)
        if sink is not None:
            sink(msg)

    return report
