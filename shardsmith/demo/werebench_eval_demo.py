"""WereBench's evaluation files for the demo game (``werebench/Season_9/01``), in the flat layout:
``data/Season_9/01.json`` (the cleaned game) and ``WereBench/WereBench.json`` (a tiny question
bank), written beside ``Season_9/`` so ``make demo`` publishes ``speech_items``.

The traps of the real files are kept: bank ids repeat across categories, one item asks the whole
table (``场上玩家``), one asker is written with the role (``女巫3号``), explanations are mostly
empty, and the cleaned game's phase times differ from the config's (the cleaned game wins and the
game carries a warning).
"""

from __future__ import annotations

import json
from pathlib import Path

CLEANED_GAME = {
    "metadata": {
        "game_id": 1,
        "source": "Demo Season 9, Episode 1",
        "game_rules": "演示用的小板子：预言家、女巫、狼人、平民。",
        "game_roles": ["预言家", "女巫", "狼人", "平民"],
        "game_status": {"first_night": "00:00:02,400", "sheiff_election": "00:00:05,000",
                        "first_day": "00:00:05,000", "end_time": "00:00:16,500"},
        "user_aliases": {"说话人 1": ["1号"], "说话人 2": ["2号"], "说话人 3": ["host"], "说话人 4": ["3号"]},
        "real_role": {"说话人 1": "预言家", "说话人 2": "狼人", "说话人 3": "host", "说话人 4": "女巫"},
        "MVP": {"id": "1号", "votes": {"first_day_votes": {"vote_to": "2 号", "cut_off_time": 6}}},
        "logs": "1 号是预言家，查验 2 号是狼人；2 号是狼人；3 号是女巫。",
        "total_utterances": 8,
        "language": "chinese",
        "summary": "1 号预言家查杀 2 号狼人，3 号女巫站边 1 号，好人阵营获胜。",
    },
    "utterances": [
        {"utterance_id": [2], "start_time": "00:00:02,500", "end_time": "00:00:04,000", "status": "first_night",
         "speaker_id": "host", "is_host": True, "role": "host", "text": "天黑请闭眼"},
        {"utterance_id": [3], "start_time": "00:00:05,000", "end_time": "00:00:08,000", "status": "first_day",
         "speaker_id": "1号", "is_host": False, "role": "预言家", "text": "1 号预言家，昨晚查验 2 号是狼人"},
        {"utterance_id": [4], "start_time": "00:00:08,000", "end_time": "00:00:10,500", "status": "first_day",
         "speaker_id": "2号", "is_host": False, "role": "狼人", "text": "2 号平民，1 号在说谎"},
        {"utterance_id": [6], "start_time": "00:00:13,000", "end_time": "00:00:15,000", "status": "first_day",
         "speaker_id": "3号", "is_host": False, "role": "女巫", "text": "3 号女巫，我相信 1 号"},
    ],
}


def _q(qid: int, line: int, asker: str, text: str, options: list[str], answer: str, explanation: str = "") -> dict:
    return {"id": qid, "utterance_id": line, "role": asker, "text": text, "text1": text.split("，")[-1],
            "options": [{"key": chr(ord("A") + i), "text": o} for i, o in enumerate(options)],
            "answerKey": answer, "reference": "data/Season_9/01.json", "explanation": explanation}


BANK = {
    "questionSetTitle": "WereBench demo",
    "version": "1.0",
    "categories": [
        {"categoryName": "Role Inference", "questions": [
            _q(1, 4, "1号", "你是1号，听完2号的发言，你认为2号最可能是什么身份？", ["狼人", "平民", "女巫"], "A")]},
        {"categoryName": "Strategic Judgment", "questions": [
            _q(1, 6, "3号", "你是3号，作为女巫，你现在应该怎么做？", ["跳身份站边1号", "隐藏身份", "毒1号"], "A")]},
        {"categoryName": "Deception Reasoning", "questions": [
            _q(1, 4, "场上玩家", "场上玩家，2号说自己是平民，这是真话吗？", ["是真话", "是谎话，2号是狼人"], "B")]},
        {"categoryName": "Social Interaction", "questions": [
            _q(2, 6, "女巫3号", "你是3号，你要如何回应1号？", ["支持1号", "怀疑1号", "不表态"], "A")]},
        {"categoryName": "Counterfactual Trade-off", "questions": [
            _q(1, 3, "2号", "你是2号，如果1号没有查杀你，你会怎么发言？", ["悍跳预言家", "安静划水", "自爆"], "B",
               "狼人没被点名时更适合隐藏。")]},
    ],
}


def write_werebench_eval_demo(werebench_root: Path) -> list[Path]:
    """The cleaned game and the bank beside ``Season_9/`` under ``werebench_root``; returns the files."""
    cleaned = werebench_root / "data" / "Season_9" / "01.json"
    bank = werebench_root / "WereBench" / "WereBench.json"
    for path, doc in ((cleaned, CLEANED_GAME), (bank, BANK)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return [cleaned, bank]
