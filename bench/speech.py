"""Speech: real-time factor of the CPU default transcriber on real speech (jfk.flac, 11 s).

RTF = transcription seconds / audio seconds (< 1 is faster than real time). Model load and the
first (warm-up) call are reported apart from the steady-state call; the word error rate against
the known reference text says the speed is not bought with wrong words.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

REAL = Path(os.environ.get("SHARDSMITH_REAL_SAMPLES", "/work/shared/real"))
REFERENCE = ("And so, my fellow Americans, ask not what your country can do for you, "
             "ask what you can do for your country.")


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def _wer(ref: list[str], hyp: list[str]) -> float:
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / max(1, len(ref))


def run() -> dict:
    flac = REAL / "speech" / "jfk.flac"
    if not flac.is_file():
        return {"measured": False, "reason": f"{flac} not found"}
    try:
        from shardsmith.media.audio import SAMPLE_RATE, decode_audio
        from shardsmith.speech.select import get_transcriber
    except ImportError as exc:
        return {"measured": False, "reason": f"shardsmith.speech unavailable: {exc}"}
    t = time.perf_counter()
    samples = decode_audio(flac)
    decode_s = time.perf_counter() - t
    audio_s = len(samples) / SAMPLE_RATE
    tr = get_transcriber()
    t = time.perf_counter()
    _ = tr.model
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    first = tr.transcribe(samples)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    second = tr.transcribe(samples)
    steady_s = time.perf_counter() - t
    out = {
        "measured": True, "backend": first.backend, "model": first.model, "compute_type": first.compute_type,
        "audio_s": round(audio_s, 2), "decode_s": round(decode_s, 3), "model_load_s": round(load_s, 2),
        "first_call_s": round(first_s, 2), "steady_call_s": round(steady_s, 2),
        "rtf_first": round(first_s / audio_s, 3), "rtf_steady": round(steady_s / audio_s, 3),
        "wer": round(_wer(_words(REFERENCE), _words(second.text)), 3), "text": second.text.strip(),
    }
    print(f"speech: {out}", flush=True)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
