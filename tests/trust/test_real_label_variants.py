"""Real VinDr ``train.csv`` and NIH ``Data_Entry_2017_v2020.csv`` mangled the way files get mangled.

The first 3,000 lines of each real file, then: the same bytes (baseline), UTF-8 with BOM, UTF-16 with a
BOM (comma-separated), a spreadsheet's "Unicode text" export (UTF-16, tab-separated), UTF-16 without a
BOM, cut in the middle of a line, a flipped byte inside UTF-8 text, a required column dropped, and
gzip copies cut short. Each is read identically, quarantines exactly the damaged row, or fails with a
LabelFileError naming file and line: never another exception, never a silently shorter output.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.registry import get_source

HEAD = 3000
FILES = {"vindr_cxr": ("vinbigdata-train.csv.gz", "train.csv", "image_id"),
         "nih_cxr14": ("Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017_v2020.csv", "Image Index")}
SAME, ROW, ERROR = "same", "row", "error"


def _head(real: Path, name: str) -> str:
    with gzip.open(real / "cxr-labels" / name, "rt", encoding="utf-8", newline="") as fh:
        return "".join(fh.readline() for _ in range(HEAD))


def _cut_mid_line(text: str) -> bytes:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:-1]).encode() + lines[-1][: len(lines[-1]) // 2].encode()


def _flip_utf8(text: str) -> bytes:
    data = ("\ufeff" + text[:200].replace("\n", " café\n", 1) + text[200:]).encode()  # real UTF-8 text
    mid = len(data) // 2
    return data[:mid] + b"\xff" + data[mid + 1:]


def _drop_column(text: str, column: str) -> bytes:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text, newline="")))
    j = [h.strip() for h in rows[0]].index(column)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:j] + r[j + 1:] for r in rows])
    return out.getvalue().encode()


VARIANTS = {
    "baseline": (lambda t, c: t.encode(), SAME, None),
    "utf8_bom": (lambda t, c: t.encode("utf-8-sig"), SAME, None),
    "utf16_bom": (lambda t, c: t.encode("utf-16"), SAME, None),
    "unicode_text_export": (lambda t, c: t.replace(",", "\t").encode("utf-16"), ERROR, "line 1: missing required"),
    "utf16_without_bom": (lambda t, c: t.encode("utf-16-le"), ERROR, "NUL"),
    "cut_mid_line": (lambda t, c: _cut_mid_line(t), ROW, "too_few_cells"),
    "flipped_byte_in_utf8": (lambda t, c: _flip_utf8(t), ERROR, "not valid UTF-8"),
    "id_column_dropped": (lambda t, c: _drop_column(t, c), ERROR, "line 1: missing required"),
    "gzip_cut": (lambda t, c: gzip.compress(t.encode())[:-100], ERROR, "truncated or corrupt archive"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("source", list(FILES))
def test_real_label_file_variant(source: str, variant: str, tmp_path: Path, real_samples: Path):
    real_name, label, id_column = FILES[source]
    text = _head(real_samples, real_name)
    make, expect, detail = VARIANTS[variant]
    adapter = get_source(source)
    base = tmp_path / "base"
    base.mkdir()
    (base / label).write_bytes(text.encode())
    baseline = adapter.read_labels(base)
    root = tmp_path / "variant"
    root.mkdir()
    path = root / (label + ".gz" if variant == "gzip_cut" else label)
    path.write_bytes(make(text, id_column))
    if expect == ERROR:
        with pytest.raises(LabelFileError) as err:
            adapter.read_labels(root)
        assert str(path) in str(err.value) and "line " in str(err.value) and detail in str(err.value), err.value
        return
    result = adapter.read_labels(root)
    if expect == SAME:
        assert [i.to_json() for i in result.items] == [i.to_json() for i in baseline.items]
        assert result.quarantine == baseline.quarantine and result.rows_read == baseline.rows_read
        return
    # one damaged row: it is quarantined by line, and its image is withheld rather than half-labelled
    cut = [q for q in result.quarantine if q["reason"] == detail]
    assert len(cut) == 1 and f":{HEAD}:" in cut[0]["detail"], result.quarantine[-3:]
    assert result.rows_read == baseline.rows_read
    lost = {i.native_id for i in baseline.items} - {i.native_id for i in result.items}
    assert lost <= {cut[0]["native_id"]} | result.withheld, lost
