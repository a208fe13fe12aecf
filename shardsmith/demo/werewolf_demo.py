"""Demo Werewolf games in each source's native layout, for ``make demo`` and the tests.

``write_werewolf_demo(raw_root)`` writes:

- ``werewolf_video/``: one short game recorded as a video (a black frame stream muxed with speech),
  made of distinct synthetic voices (espeak-ng, different voice variants and pitch) taking turns:
  a host and four seats. Two copies with sidecars: ``demo-village-turns`` carries the human-style
  speaker ``turns``; ``demo-village-diarize`` has none, so speakers come from diarization.
- ``werebench/Season_9/``: a small SRT plus its ``01-GAME_CONFIG.py`` (and a template file that is
  not a game), in WereBench's layout.  Beside it ``data/Season_9/01.json`` (the cleaned game) and ``WereBench/WereBench.json`` (a tiny
  question bank), from ``werebench_eval_demo``.
- ``werewolf_among_us/data/Youtube/train.json``: two small games in that dataset's JSON layout.

Everything is deterministic: same espeak-ng and PyAV versions, same bytes. espeak-ng is a Debian
package (``apt-get install espeak-ng``); without it the video demo raises a clear error.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SR = 16_000
GAP_S = 0.6  # silence between turns, as between speakers at a table

# speaker -> (espeak voice, pitch 0-99, words per minute)
VOICES: dict[str, tuple[str, int, int]] = {  # chosen for low d-vector similarity between speakers
    "host": ("en+f3", 85, 160),
    "1": ("en-us+m1", 35, 150),
    "2": ("en+klatt", 30, 150),
    "3": ("en+m2", 5, 140),
    "4": ("en-us+m7", 45, 155),
}

SEATS = [
    {"seat": 1, "player": "Ava Demo", "role": "seer"},
    {"seat": 2, "player": "Ben Demo", "role": "werewolf"},
    {"seat": 3, "player": "Cleo Demo", "role": "villager"},
    {"seat": 4, "player": "Dan Demo", "role": "witch"},
]

# (speaker, text, phase)
SCRIPT: list[tuple[str, str, str]] = [
    (
        "host",
        "Night falls. Everyone, close your eyes. Werewolves, open your eyes and choose a victim.",
        "night_1",
    ),
    ("host", "Day breaks. Nobody died last night. Seat one, please speak.", "day_1"),
    (
        "1",
        "Seat one here. I am the seer. Last night I checked seat two, and seat two is a werewolf. "
        "Please vote for seat two.",
        "day_1",
    ),
    ("host", "Thank you. Seat two, it is your turn now, please speak.", "day_1"),
    (
        "2",
        "Seat two here. I am only a villager. Seat one is lying to all of you, so do not trust that seer.",
        "day_1",
    ),
    ("host", "Thank you. Seat three, it is your turn now, please speak.", "day_1"),
    (
        "3",
        "Seat three here. I believe seat one, because that story sounds right. I will vote for seat two.",
        "day_1",
    ),
    ("host", "Thank you. Seat four, it is your turn now, please speak.", "day_1"),
    (
        "4",
        "Seat four here. I am the witch. I had my potion ready, and I trust the seer. Seat two must go.",
        "day_1",
    ),
    ("host", "Time to vote. Seat two is voted out. The werewolf is gone, and the village wins.", "day_1"),
]


@dataclass(frozen=True)
class DemoTurn:
    start: float
    end: float
    speaker: str  # "host" or the seat number as a string
    text: str
    phase: str


def _espeak_wav(text: str, voice: str, pitch: int, speed: int) -> bytes:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the werewolf video demo needs espeak-ng (Debian: apt-get install espeak-ng)")
    return subprocess.run(
        [exe, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout


def _wav_to_16k(wav: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(wav)) as c:
        rs = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=SR)
        parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in rs.resample(fr)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    return np.concatenate(parts).astype(np.float32)


def _trim(x: np.ndarray, thresh: float = 0.01) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > thresh)
    return x[idx[0] : idx[-1] + 1] if idx.size else x


def synthesize_game() -> tuple[np.ndarray, list[DemoTurn]]:
    """The demo game's audio (16 kHz mono) and the exact turns it was assembled from."""
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SR), np.float32)]
    turns: list[DemoTurn] = []
    t = 0.5
    for speaker, text, phase in SCRIPT:
        voice, pitch, speed = VOICES[speaker]
        clip = _trim(_wav_to_16k(_espeak_wav(text, voice, pitch, speed)))
        clip = (0.6 * clip / max(float(np.abs(clip).max()), 1e-6)).astype(np.float32)
        turns.append(DemoTurn(round(t, 3), round(t + len(clip) / SR, 3), speaker, text, phase))
        pieces += [clip, np.zeros(int(GAP_S * SR), np.float32)]
        t += len(clip) / SR + GAP_S
    return np.concatenate(pieces), turns


def write_video(
    path: Path,
    samples: np.ndarray | None,
    sr: int = SR,
    *,
    fps: int = 2,
    size: tuple[int, int] = (64, 48),
    duration_s: float | None = None,
) -> Path:
    """An MP4 with a black video stream and (unless ``samples`` is None) an AAC audio stream."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    duration = duration_s if duration_s is not None else (len(samples) / sr if samples is not None else 2.0)
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as out:
        v = out.add_stream("mpeg4", rate=fps, options={"flags": "+bitexact"})
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = None
        if samples is not None:
            a = out.add_stream("aac", rate=sr, options={"flags": "+bitexact"})
            a.layout = "mono"
        black = np.zeros((size[1], size[0], 3), np.uint8)
        for i in range(max(1, int(np.ceil(duration * fps)))):
            frame = av.VideoFrame.from_ndarray(black, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None and samples is not None:
            pcm = np.asarray(samples, np.float32).reshape(1, -1)
            step = 1024
            for i in range(0, pcm.shape[1], step):
                fr = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[:, i : i + step]), format="flt", layout="mono"
                )
                fr.sample_rate, fr.pts = sr, i
                for p in a.encode(fr):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return path


def demo_sidecar(game_id: str, turns: list[DemoTurn], include_turns: bool) -> dict:
    """The sidecar JSON (see schemas/werewolf_sidecar.schema.json) for the demo video game."""
    phases = []
    names = list(dict.fromkeys(t.phase for t in turns))
    for k, name in enumerate(names):  # phase boundaries sit in the middle of the pause between turns
        first = next(t for t in turns if t.phase == name)
        last = [t for t in turns if t.phase == name][-1]
        start = 0.0 if k == 0 else round(first.start - GAP_S / 2, 3)
        end = round(last.end + (GAP_S / 2 if k + 1 < len(names) else 1.0), 3)
        phases.append({"name": name, "start": start, "end": end})
    side: dict = {
        "game_id": game_id,
        "language": "en",
        "rule_variant": "seer+witch+werewolf+villager (demo)",
        "host": True,
        "seats": SEATS,
        "votes": [
            {"day": 1, "voter": 1, "target": 2},
            {"day": 1, "voter": 2, "target": 1},
            {"day": 1, "voter": 3, "target": 2},
            {"day": 1, "voter": 4, "target": 2},
        ],
        "winner": "village",
        "phases": phases,
    }
    if include_turns:
        side["turns"] = [
            {"start": t.start, "end": t.end, "seat": "host" if t.speaker == "host" else int(t.speaker)}
            for t in turns
        ]
    return side


_TURNS_CACHE: list[DemoTurn] | None = None

WEREBENCH_SRT = """\ufeff1\r
00:00:00,500 --> 00:00:02,000\r
说话人 3: 大家好，欢迎来到狼人杀\r
\r
2\r
00:00:02,500 --> 00:00:04,000\r
说话人 3: 天黑请闭眼\r
\r
3\r
00:00:05,000 --> 00:00:08,000\r
说话人 1: 1 号预言家，昨晚查验 2 号是狼人\r
\r
4\r
00:00:08,000 --> 00:00:10,500\r
说话人 2: 2 号平民，1 号在说谎\r
\r
5\r
00:00:11,000 --> 00:00:1x,000\r
说话人 4: 这一条的时间戳坏了\r
\r
6\r
00:00:13,000 --> 00:00:15,000\r
说话人 4: 3 号女巫，我相信 1 号\r
7\r
00:00:15,000 --> 00:00:16,000\r
掌声\r
\r
8\r
00:00:16,500 --> 00:00:18,000\r
说话人 3: 游戏结束，好人胜利\r
"""

WEREBENCH_CONFIG = """GAME_CONFIG = {
    "metadata": {
        "game_id": 1,
        "source": "Demo Season 9, Episode 1",
        "game_rules": "演示用的小板子：预言家、女巫、狼人、平民。",
        "game_roles": ["预言家", "女巫", "狼人", "平民"],
        "game_status": OrderedDict([
            ("first_night", "00:00:02,500"),
            ("sheiff_election", "00:00:05,000"),
            ("first_day", "00:00:05,000"),
            ("end_time", "00:00:16,500"),
        ]),
        "user_aliases": {"说话人 1": ["1号"], "说话人 2": ["2号"], "说话人 3": ["host"], "说话人 4": ["3号"]},
        "real_role": {"说话人 1": "预言家", "说话人 2": "狼人", "说话人 3": "host", "说话人 4": "女巫"},
        "MVP": {"id": "1号", "votes": {"first_day_votes": {"vote_to": "2 号", "cut_off_time": 6}}},
        "logs": "",
    },
    "sheriff_appointments": {},
    "summary_id_range": (8, 8),
}
"""

WEREBENCH_TEMPLATE = """GAME_CONFIG = {
    "metadata": {
        "game_id": "",
        "game_status": OrderedDict([("first_night", ""), ("end_time", "")]),
        "MVP": {"id": "", "votes": {"first_day_votes": {"vote_to": "", "cut_off_time": }}},
    }
}
"""


def werewolf_among_us_games() -> list[dict]:
    """Two small games in Werewolf Among Us' JSON layout (one with an NA vote)."""
    return [
        {
            "video_name": "demoGame01",
            "Game_ID": "1",
            "playerNames": ["Alice", "Bob", "Carol", "Dave"],
            "startRoles": ["Seer", "Werewolf", "Robber", "Villager"],
            "endRoles": ["Seer", "Villager", "Werewolf", "Villager"],
            "votingOutcome": [1, 2, 1, 1],
            "Dialogue": [
                {
                    "Rec_Id": 1,
                    "speaker": "Moderator",
                    "timestamp": "00:01",
                    "utterance": "Everyone, wake up!",
                    "annotation": ["No Strategy"],
                },
                {
                    "Rec_Id": 2,
                    "speaker": "Alice",
                    "timestamp": "00:04",
                    "utterance": "I'm the seer, Bob is a wolf.",
                    "annotation": ["Identity Declaration", "Accusation"],
                },
                {
                    "Rec_Id": 3,
                    "speaker": "Bob",
                    "timestamp": "00:09",
                    "utterance": "Why would you say that?",
                    "annotation": ["Interrogation", "Defense"],
                },
                {
                    "Rec_Id": 4,
                    "speaker": "Game Audio",
                    "timestamp": "00:15",
                    "utterance": "One minute left.",
                    "annotation": [],
                },
                {
                    "Rec_Id": 5,
                    "speaker": "Eve",
                    "timestamp": "00:20",
                    "utterance": "(a voice from off camera)",
                    "annotation": ["No Strategy"],
                },
                {
                    "Rec_Id": 6,
                    "speaker": "Dave",
                    "timestamp": "0:2x",
                    "utterance": "Vote Bob.",
                    "annotation": ["Call for Action"],
                },
            ],
        },
        {
            "video_name": "demoGame02",
            "Game_ID": "2",
            "playerNames": ["Alice", "Bob", "Carol"],
            "startRoles": ["Werewolf", "Troublemaker", "Tanner"],
            "endRoles": ["Werewolf", "Troublemaker", "Tanner"],
            "votingOutcome": "NA",
            "Dialogue": [
                {
                    "Rec_Id": 1,
                    "speaker": "Carol",
                    "timestamp": "01:02",
                    "utterance": "I am the tanner, vote me.",
                    "annotation": ["Identity Declaration", "Call for Action"],
                },
                {
                    "Rec_Id": 2,
                    "speaker": "Alice",
                    "timestamp": "01:05",
                    "utterance": "Nice try.",
                    "annotation": ["No Strategy"],
                },
            ],
        },
    ]


def write_werewolf_demo(raw_root: str | Path, *, video: bool = True) -> dict[str, list[Path]]:
    """Write every Werewolf demo source under ``raw_root/<source>/``; returns the files per source."""
    global _TURNS_CACHE
    raw_root = Path(raw_root)
    written: dict[str, list[Path]] = {"werebench": [], "werewolf_among_us": [], "werewolf_video": []}

    wb = raw_root / "werebench" / "Season_9"
    wb.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("01.srt", WEREBENCH_SRT),
        ("01-GAME_CONFIG.py", WEREBENCH_CONFIG),
        ("00-GAME_CONFIG_template.py", WEREBENCH_TEMPLATE),
    ):
        (wb / name).write_bytes(text.encode("utf-8"))
        written["werebench"].append(wb / name)
    from shardsmith.demo.werebench_eval_demo import write_werebench_eval_demo

    written["werebench"] += write_werebench_eval_demo(wb.parent)

    wau = raw_root / "werewolf_among_us" / "data" / "Youtube"
    wau.mkdir(parents=True, exist_ok=True)
    (wau / "train.json").write_text(
        json.dumps(werewolf_among_us_games(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    written["werewolf_among_us"].append(wau / "train.json")

    if video:
        samples, turns = synthesize_game()
        _TURNS_CACHE = turns
        vid_root = raw_root / "werewolf_video"
        for game_id, with_turns in (("demo-village-turns", True), ("demo-village-diarize", False)):
            mp4 = write_video(vid_root / f"{game_id}.mp4", samples)
            side = vid_root / f"{game_id}.json"
            side.write_text(
                json.dumps(demo_sidecar(game_id, turns, with_turns), indent=1) + "\n", encoding="utf-8"
            )
            written["werewolf_video"] += [mp4, side]
    return written


def demo_turns() -> list[DemoTurn]:
    """The turns of the demo video game (synthesised again if needed; deterministic)."""
    global _TURNS_CACHE
    if _TURNS_CACHE is None:
        _TURNS_CACHE = synthesize_game()[1]
    return _TURNS_CACHE
