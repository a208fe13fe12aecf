"""MIMIC-CXR free-text reports: where they are and how they split into sections.

Reports come from MIMIC-CXR (not -JPG), as ``mimic-cxr-reports.zip`` holding
``files/pXX/pNNNNNNNN/sNNNNNNNN.txt`` or as those files unzipped beside the images. A report is
free text with upper-case headers followed by a colon (``EXAMINATION:``, ``INDICATION:``,
``FINDINGS:``, ``IMPRESSION:``); many lack FINDINGS, some lack IMPRESSION. Every section is kept
verbatim under its own header; text before the first header (``FINAL REPORT``) is ``PREAMBLE``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

REPORTS_ZIP = "mimic-cxr-reports.zip"
HEADER = re.compile(r"^[ \t]*([A-Z][A-Z &/()-]*[A-Z)]):", re.MULTILINE)
PREAMBLE = "PREAMBLE"


def report_relpath(subject: str, study: str) -> str:
    """``files/p10/p10000032/s50414267.txt`` for subject ``10000032`` and study ``50414267``."""
    return f"files/p{subject[:2]}/p{subject}/s{study}.txt"


def parse_sections(text: str) -> list[dict[str, str]]:
    """Sections in report order, each ``{"name", "text"}`` with the text stripped of its edges only;
    an empty section (a header with nothing under it) is kept, so what the report holds is visible."""
    sections: list[dict[str, str]] = []
    heads = list(HEADER.finditer(text))
    first = heads[0].start() if heads else len(text)
    if text[:first].strip():
        sections.append({"name": PREAMBLE, "text": text[:first].strip()})
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        sections.append({"name": m.group(1).strip(), "text": text[m.end():end].strip()})
    return sections


class ReportStore:
    """Reports by (subject, study), read on demand from the zip or the unzipped tree under ``root``.

    The zip's member list is read once (names only); a study without a report gives None."""

    def __init__(self, root: Path) -> None:
        self.root = root
        path = root / REPORTS_ZIP
        self.zip = zipfile.ZipFile(path) if path.is_file() else None
        self.members: dict[str, str] = {}
        if self.zip is not None:  # members may sit under a top folder (mimic-cxr-reports/files/...)
            for name in self.zip.namelist():
                cut = name.find("files/")
                if cut >= 0 and name.endswith(".txt"):
                    self.members[name[cut:]] = name

    @property
    def label_file(self) -> str | None:
        return REPORTS_ZIP if self.zip is not None else None

    def text(self, subject: str, study: str) -> str | None:
        rel = report_relpath(subject, study)
        if self.zip is not None and rel in self.members:
            data = self.zip.read(self.members[rel])
        elif (self.root / rel).is_file():
            data = (self.root / rel).read_bytes()
        else:
            return None
        return data.decode("utf-8", errors="replace").strip() or None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
