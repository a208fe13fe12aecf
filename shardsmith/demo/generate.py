"""``make demo`` / ``shardsmith demo``: sample data for every supported source, in native layouts."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# module -> function(raw_root) writing that family's sources; families are independent.
DEMO_WRITERS = (
    ("shardsmith.demo.cxr_core", "write_demo"),
    ("shardsmith.demo.cxr_more", "write_demo"),
    ("shardsmith.demo.mimic_demo", "write_demo"),
    ("shardsmith.demo.volumes_demo", "write_demo"),
    ("shardsmith.demo.werewolf_demo", "write_werewolf_demo"),
)


def write_all(home: Path) -> list[str]:
    raw = home / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = []
    for module_name, func in DEMO_WRITERS:
        log.info("writing demo data: %s", module_name)
        getattr(importlib.import_module(module_name), func)(raw)
        written.append(module_name)
    return sorted(p.name for p in raw.iterdir() if p.is_dir())
