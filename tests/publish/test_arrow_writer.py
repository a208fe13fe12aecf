"""The release writes WebDataset members from Arrow columns (issue 24, per-row CPU): every member is
the byte string the per-row reference codec (``wds_codec.encode_sample``) gives for the published
Parquet row, and the card's label counts are the per-row counts."""

from __future__ import annotations

import datetime as dt
import json
import math
import tarfile
from collections import Counter, defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.publish.release import label_counter
from shardsmith.publish.wds_codec import encode_sample, json_members, json_texts, wds_key
from shardsmith.schemas.tables import TABLES, TableSpec

REFERENCE = {"sort_keys": True, "ensure_ascii": False,
             "default": lambda v: None if isinstance(v, bytes) else v.isoformat()}


def _reference(array: pa.Array) -> list[str]:
    return [json.dumps(v, **REFERENCE) for v in array.to_pylist()]


EDGE = {
    "text": (["plain", 'quote " and \\ back', "line\nbreak\ttab\x01\x1f", "caf\u00e9 \u2028 \U0001f600", "", None],
             pa.string()),
    "big": (["x", None, 'y"', "z", "", "\x7f"], pa.large_string()),
    "ints": ([0, -1, 2**40, None, 7, 3], pa.int64()),
    "small": ([1, None, -3, 4, 5, 6], pa.int8()),
    "flags": ([True, False, None, True, False, True], pa.bool_()),
    "doubles": ([0.1, 1e16, -0.0, math.nan, math.inf, None], pa.float64()),
    "singles": ([0.1, 1e-7, -math.inf, None, 3.0, 2.5], pa.float32()),
    "blob": ([b"\x00", None, b"", b"png", b"x", b"y"], pa.binary()),
    "nested": ([[1.5, None], [], None, [math.nan], [2.0], [1e300]], pa.list_(pa.float32())),
    "deep": ([[["a"], []], None, [None], [["b", None]], [], [["\n"]]], pa.list_(pa.list_(pa.string()))),
    "when": ([dt.date(2020, 1, 2), None, dt.date(1999, 12, 31), dt.date(2000, 1, 1), None, None], pa.date32()),
    "kind": (["a", "b", "a", None, "b", "a"], pa.dictionary(pa.int32(), pa.string())),
    "empty": ([{}, None, {}, {}, {}, {}], pa.struct([])),
}
EDGE_STRUCT = pa.struct([pa.field("z", pa.int32()), pa.field("a", pa.list_(pa.struct([
    pa.field("status", pa.string()), pa.field("label", pa.string()), pa.field("box", pa.list_(pa.float32())),
    pa.field("mask", pa.struct([pa.field("size", pa.list_(pa.int32())), pa.field("counts", pa.string())]))]))),
    pa.field("m", pa.binary())])
EDGE_ROWS = [
    {"z": 1, "a": [{"status": "present", "label": "L\u00e9sion", "box": [1.5, 2.25, 3.0, 4.0],
                    "mask": {"size": [2, 3], "counts": 'a"b\\c'}}], "m": b"\x89PNG"},
    None,
    {"z": None, "a": [], "m": None},
    {"z": 2, "a": None, "m": b""},
    {"z": 3, "a": [None, {"status": None, "label": "x", "box": None, "mask": None}], "m": b"q"},
    {"z": 4, "a": [{"status": "absent", "label": "y", "box": [], "mask": {"size": None, "counts": None}}], "m": None},
]


def test_json_texts_are_json_dumps_of_each_value() -> None:
    for name, (values, kind) in EDGE.items():
        array = pa.array(values, kind) if not pa.types.is_dictionary(kind) else pa.array(values).dictionary_encode()
        assert json_texts(array).to_pylist() == _reference(array), name
        assert json_texts(array.slice(2, 3)).to_pylist() == _reference(array.slice(2, 3)), name  # offsets kept
    struct = pa.array(EDGE_ROWS, EDGE_STRUCT)
    assert json_texts(struct).to_pylist() == _reference(struct)
    assert json_texts(struct.slice(1, 4)).to_pylist() == _reference(struct.slice(1, 4))
    table = pa.table({name: (pa.array(v, k) if not pa.types.is_dictionary(k) else pa.array(v).dictionary_encode())
                      for name, (v, k) in EDGE.items()} | {"s": pa.array(EDGE_ROWS, EDGE_STRUCT)})
    spec = TableSpec("edge", "", "text", {"blob": "bin"})
    rows = table.to_pylist()
    assert json_members(table, spec) == [encode_sample(r, spec, "k")[0][1] for r in rows]
    assert json_members(table.slice(0, 0), spec) == []


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """One medical release over sources with PNGs and JPEGs, boxes, masks, reports and views."""
    from shardsmith.demo import cxr_core, cxr_more, mimic_demo
    from shardsmith.pipeline.releases import build_release
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    sources = ("chexpert", "mimic_cxr", "siim_acr", "vindr_cxr")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-arrow-writer")
        settings = Settings(home=tmp_path_factory.mktemp("home"), workers=1)  # JPEGs within the size: kept
        cxr_more.write_chexpert(settings.raw_dir("chexpert"))
        mimic_demo.write_mimic(settings.raw_dir("mimic_cxr"))
        cxr_more.write_siim(settings.raw_dir("siim_acr"))
        cxr_core.write_vindr(settings.raw_dir("vindr_cxr"))
        for name in sources:
            run_source(settings, get_source(name))
        return build_release(settings, "medical", list(sources))


def _members(shards: list) -> list[tuple[str, bytes]]:
    out = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            out += [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    return out


def test_every_member_is_the_reference_encoding_of_its_parquet_row(release) -> None:
    root = release.path
    tables = sorted(p.name for p in (root / "data").iterdir())
    assert {"records", "grounding", "dialogues", "pretrain", "pairs", "knowledge"} <= set(tables)
    kinds = Counter()
    for name in tables:
        spec = TABLES[name]
        for split_dir in sorted((root / "data" / name).iterdir()):
            rows = [r for p in sorted(split_dir.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
            expected = [m for r in rows for m in encode_sample(r, spec, wds_key(r[spec.key_column]))]
            got = _members(sorted((root / "wds" / name / split_dir.name).glob("*.tar")))
            assert got == expected, (name, split_dir.name)
            kinds.update(n.rsplit(".", 1)[1] for n, _ in got)
            if name == "records":
                has = {k: any(r[k] for r in rows) for k in ("targets", "report_sections")}
                kinds.update(k for k, v in has.items() if v)
    assert {"json", "png", "jpg", "targets", "report_sections"} <= set(kinds)


def test_label_counts_are_the_per_row_counts(release) -> None:
    files = sorted((release.path / "data" / "records").rglob("*.parquet"))
    hook, stats = label_counter()
    expected = {k: defaultdict(Counter) for k in ("findings", "targets", "splits", "abnormal")}
    for f in files:
        table = pq.read_table(f)
        for batch in table.to_batches(max_chunksize=7):  # several batches: counts add up
            hook(pa.Table.from_batches([batch]))
        for row in table.to_pylist():
            src = row["source"]
            expected["splits"][src][row["split"]] += 1
            expected["abnormal"][src][str(row["abnormal"]).lower()] += 1
            for f_ in row["findings"] or ():
                if f_["status"] == "present":
                    expected["findings"][f_["label"]][src] += 1
            for t in row["targets"] or ():
                expected["targets"][t["label"]][src] += 1
    assert stats == expected and expected["findings"] and expected["targets"]
