"""``make demo`` / ``shardsmith demo``: sample data for every supported source, in native layouts."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Each module exposes write_demo(raw_root); families are independent of one another.
DEMO_WRITERS = (
    "shardsmith.demo.cxr_core",
    "shardsmith.demo.cxr_more",
    "shardsmith.demo.volumes_demo",
    "shardsmith.demo.werewolf_demo",
)


def write_all(home: Path) -> list[str]:
    raw = home / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DEMO_WRITERS:
        module = importlib.import_module(name)
        module.write_demo(raw)
        written.append(name)
    return sorted(p.name for p in raw.iterdir() if p.is_dir())
