"""Property-based fuzzing of every label parser and the video sidecar reader (hypothesis).

Each parser gets its source's demo label file mangled the ways real files get mangled: cut at a random
byte, bytes flipped, re-saved in another encoding, a column added or dropped, one row's cell dropped.
Whatever comes in, the outcome is a result (items plus quarantine rows) or a ``LabelFileError`` naming
the file and a line; never any other exception. A result also accounts for its rows: every data line
that survived the mangling intact is an item, a withheld id or a quarantine row (no silently shorter
output), and re-encodings or an extra column change nothing at all. Refusing is not a free pass: where
the damage is confined to rows (a file cut after its header, one row missing a cell) or the file is
only re-encoded with a byte-order mark, the parser must read it and the good rows must survive as
items, so a parser that refuses every file fails here (``test_a_parser_that_refuses_every_file_fails``
proves it). Examples are bounded so the whole file stays within a few tens of seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.registry import get_source

# Bounded and deterministic for `make test`; SHARDSMITH_FUZZ_EXAMPLES=500 explores further (random seeds).
_EXAMPLES = int(os.environ.get("SHARDSMITH_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=_EXAMPLES, deadline=None, derandomize="SHARDSMITH_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LINE = re.compile(r"line \d+")


def _writer(module: str, name: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(root)

    return write


@dataclass(frozen=True)
class CsvSpec:
    source: str
    write: Callable[[Path], None]
    label: str  # the label file mangled, relative to the source root
    id_column: str  # the column whose value names the item a row belongs to
    delimiter: str = ","
    gzip_copies: bool = True  # the adapter also finds ``<label>.gz``
    columns_are_labels: bool = False  # every extra column is an observation (CheXpert): an unknown one fails


CXR = "shardsmith.demo.cxr_core"
MORE = "shardsmith.demo.cxr_more"
VOL = "shardsmith.demo.volumes_demo"
CSV_SPECS = [
    CsvSpec("vindr_cxr", _writer(CXR, "write_vindr"), "train.csv", "image_id"),
    CsvSpec("nih_cxr14", _writer(CXR, "write_nih"), "Data_Entry_2017_v2020.csv", "Image Index"),
    CsvSpec("rsna_pneumonia", _writer(MORE, "write_rsna"), "stage_2_train_labels.csv", "patientId"),
    CsvSpec("siim_acr", _writer(MORE, "write_siim"), "train-rle.csv", "ImageId"),
    CsvSpec("chexpert", _writer(MORE, "write_chexpert"), "CheXpert-v1.0-small/train.csv", "Path",
            columns_are_labels=True),
    CsvSpec("ms_cxr", _writer(MORE, "write_ms_cxr"), "MS_CXR_Local_Alignment_v1.1.0.csv", "dicom_id"),
    CsvSpec("totalsegmentator", _writer(VOL, "write_totalsegmentator"), "meta.csv", "image_id", ";",
            gzip_copies=False),
]

_BASE: dict[str, Path] = {}


def _base(source: str, write: Callable[[Path], None]) -> Path:
    """The demo tree of a source, written once per session and copied per example."""
    if source not in _BASE:
        root = Path(tempfile.mkdtemp(prefix=f"fuzz-{source}-"))
        write(root)
        _BASE[source] = root
    return _BASE[source]


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    for root in _BASE.values():
        shutil.rmtree(root, ignore_errors=True)
    _BASE.clear()


@contextmanager
def _mangled(source: str, write: Callable[[Path], None], label: str, data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-ex-") as tmp:
        root = Path(tmp) / source
        shutil.copytree(_base(source, write), root, symlinks=True)
        (root / label).write_bytes(data)
        yield root


def _assert_names_file_and_line(err: LabelFileError, path: Path) -> None:
    msg = str(err)
    assert path.name in msg and LINE.search(msg), msg


# ----------------------------------------------------------------------------- mutations
@st.composite
def truncation(draw, data: bytes) -> bytes:
    return data[: draw(st.integers(0, max(0, len(data) - 1)))]


@st.composite
def byte_flips(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(out) - 1))
        out[i] ^= draw(st.integers(1, 255))
    return bytes(out)


def _table(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _dump(rows: list[list[str]], delimiter: str) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


@st.composite
def drop_column(draw, text: str, delimiter: str) -> bytes:
    rows = _table(text, delimiter)
    j = draw(st.integers(0, len(rows[0]) - 1))
    return _dump([r[:j] + r[j + 1:] for r in rows], delimiter)


@st.composite
def drop_cell(draw, text: str, delimiter: str) -> bytes:
    rows = _table(text, delimiter)
    i = draw(st.integers(1, len(rows) - 1))
    j = draw(st.integers(0, len(rows[i]) - 1))
    rows[i] = rows[i][:j] + rows[i][j + 1:]
    return _dump(rows, delimiter)


def mutations(data: bytes, delimiter: str) -> st.SearchStrategy[tuple[str, bytes]]:
    text = data.decode("utf-8-sig")
    return st.one_of(
        st.tuples(st.just("truncated"), truncation(data)),
        st.tuples(st.just("flipped"), byte_flips(data)),
        st.tuples(st.just("dropped_column"), drop_column(text, delimiter)),
        st.tuples(st.just("dropped_cell"), drop_cell(text, delimiter)),
        st.tuples(st.just("gzip_cut"), st.integers(10, 200).map(lambda n: gzip.compress(data)[:-n])),
        st.tuples(st.just("utf16_no_bom"), st.just(text.encode("utf-16-le"))),
        st.tuples(st.just("utf32"), st.just(text.encode("utf-32"))),
    )


# ----------------------------------------------------------------------------- CSV parsers
def _accounted(result) -> list[str]:
    """Every string that can name an item the parser accounted for."""
    names = [i.native_id for i in result.items] + [i.image_relpath or "" for i in result.items]
    names += list(result.withheld)
    names += [(q["native_id"] or "") + " " + (q["detail"] or "") for q in result.quarantine]
    return names


def _intact_rows(original: str, mangled: bytes, spec: CsvSpec) -> list[dict[str, str]]:
    """Original data rows whose whole line survives, byte for byte, in the mangled file."""
    lines = original.splitlines()
    header = _table(lines[0], spec.delimiter)[0]
    kept = set(mangled.replace(b"\r\n", b"\n").split(b"\n")[1:-1])  # complete lines only, not the cut last one
    out = []
    for line in lines[1:]:
        if line.strip() and line.encode() in kept:
            out.append(dict(zip([h.strip() for h in header], _table(line, spec.delimiter)[0], strict=False)))
    return out


def _parse(spec: CsvSpec, root: Path):
    return get_source(spec.source).read_labels(root)


# Damage confined to rows: the file is cut after its header (only the last line is broken) or one row
# lost a cell. Refusing the whole file there would throw good rows away.
MUST_READ = ("truncated", "dropped_cell")


def _item_names(result) -> list[str]:
    return [n for i in result.items for n in (i.native_id, i.image_relpath) if n]


def _good_ids(original: str, mangled: bytes, spec: CsvSpec, baseline_names: list[str]) -> set[str]:
    """Ids that were items before and every one of whose rows survived the mangling intact."""
    all_ids: dict[str, int] = {}
    for row in _intact_rows(original, original.encode(), spec):
        key = row[spec.id_column].strip()
        all_ids[key] = all_ids.get(key, 0) + 1
    kept: dict[str, int] = {}
    for row in _intact_rows(original, mangled, spec):
        key = row[spec.id_column].strip()
        kept[key] = kept.get(key, 0) + 1
    return {k for k, n in kept.items() if n == all_ids.get(k) and any(k in b for b in baseline_names)}


@pytest.mark.parametrize("spec", CSV_SPECS, ids=[s.source for s in CSV_SPECS])
def test_csv_parser_survives_mangling(spec: CsvSpec):
    fuzz_csv_parser(spec)


def fuzz_csv_parser(spec: CsvSpec) -> None:
    """The property of one CSV parser, run over the mutations (also by the refuse-everything check)."""
    base = _base(spec.source, spec.write)
    original_bytes = (base / spec.label).read_bytes()
    original = original_bytes.decode("utf-8-sig")
    public = get_source(spec.source)._public_id
    baseline_names = _item_names(_parse(spec, base))
    assert baseline_names, f"{spec.source}: the unmangled demo file gives no items"

    @FUZZ
    @given(mutations(original_bytes, spec.delimiter))
    def check(mutation: tuple[str, bytes]) -> None:
        kind, data = mutation
        assume(kind != "gzip_cut" or spec.gzip_copies)
        label = spec.label + (".gz" if kind == "gzip_cut" else "")
        with _mangled(spec.source, spec.write, label, data) as root:
            if kind == "gzip_cut":
                (root / spec.label).unlink()
            good = _good_ids(original, data, spec, baseline_names) if kind in MUST_READ else set()
            try:
                result = _parse(spec, root)
            except LabelFileError as err:
                _assert_names_file_and_line(err, root / label)
                assert not good, f"{kind}: refused a file whose rows for {sorted(good)} are intact ({err})"
                return
        assert kind not in ("utf16_no_bom", "utf32", "gzip_cut"), f"{kind} was read as if it were fine"
        names = _item_names(result)
        lost = sorted(k for k in good if not any(k in n for n in names))
        assert not lost, f"{kind}: good rows did not survive as items: {lost}"
        if kind != "dropped_column":
            accounted = _accounted(result)
            for row in _intact_rows(original, data, spec):
                ident = row[spec.id_column].strip()  # items keep raw ids; quarantine rows the public ones
                assert any(ident in a or public(ident) in a for a in accounted), (kind, ident, accounted)
        if spec.source != "totalsegmentator":  # a volume source counts cases, not meta rows
            assert result.rows_read >= len(_intact_rows(original, data, spec))

    check()


@pytest.mark.parametrize("spec", CSV_SPECS, ids=[s.source for s in CSV_SPECS])
@pytest.mark.parametrize("variant", ["utf-8-sig", "utf-16", "utf-16-be-bom", "latin-1", "extra_column", "crlf"])
def test_csv_parser_reads_faithful_variants_identically(spec: CsvSpec, variant: str):
    """UTF-8 with BOM, UTF-16 with BOM, Latin-1 (ASCII content), an extra column and CRLF: same items."""
    base = _base(spec.source, spec.write)
    text = (base / spec.label).read_bytes().decode("utf-8-sig")
    if variant == "extra_column":
        data = _dump([r + ["extra"] for r in _table(text, spec.delimiter)], spec.delimiter)
    elif variant == "crlf":
        data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    elif variant == "utf-16-be-bom":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        data = text.encode(variant)
    baseline = _parse(spec, base)
    with _mangled(spec.source, spec.write, spec.label, data) as root:
        if variant == "extra_column" and spec.columns_are_labels:
            with pytest.raises(LabelFileError, match=r"line 1: column 'extra'"):
                _parse(spec, root)
            return
        result = _parse(spec, root)
    assert [i.to_json() for i in result.items] == [i.to_json() for i in baseline.items]
    assert [q["reason"] for q in result.quarantine] == [q["reason"] for q in baseline.quarantine]


def test_latin1_fallback_never_hides_corrupted_utf8(tmp_path: Path):
    """A UTF-8 file with one bad byte is refused with its line; a genuine Latin-1 file is read."""
    from shardsmith.sources.labelfiles import read_label_text

    good = "id,label\nA,Neumonía\nB,Mass\n"
    (tmp_path / "latin1.csv").write_bytes(good.encode("latin-1"))
    assert read_label_text(tmp_path / "latin1.csv") == good
    corrupt = good.encode("utf-8").replace(b"Mass", b"M\xe1ss")
    (tmp_path / "corrupt.csv").write_bytes(corrupt)
    with pytest.raises(LabelFileError, match=r"corrupt\.csv: line 3: not valid UTF-8"):
        read_label_text(tmp_path / "corrupt.csv")
    (tmp_path / "c1.csv").write_bytes(b"id,label\nA,\x85Mass\n")  # a C1 control: not Latin-1 text
    with pytest.raises(LabelFileError, match=r"line 2: control character"):
        read_label_text(tmp_path / "c1.csv")


# ----------------------------------------------------------------------------- JSON / XML parsers
@dataclass(frozen=True)
class FileSpec:
    source: str
    write: Callable[[Path], None]
    label: str


FILE_SPECS = [
    FileSpec("chestx_det", _writer(MORE, "write_chestx_det"), "ChestX_Det_train.json"),
    FileSpec("msd", _writer(VOL, "write_msd"), "Task01_BrainTumour/dataset.json"),
    FileSpec("kits", _writer(VOL, "write_kits"), "data/kits.json"),
    FileSpec("lidc_idri", _writer(VOL, "write_lidc"), ""),  # the XML is found below
]


def _label_path(spec: FileSpec, base: Path) -> str:
    if spec.label:
        return spec.label
    return str(next(base.rglob("*.xml")).relative_to(base))


def byte_mutations(data: bytes) -> st.SearchStrategy[tuple[str, bytes]]:
    text = data.decode("utf-8-sig")
    return st.one_of(
        st.tuples(st.just("truncated"), truncation(data)),
        st.tuples(st.just("flipped"), byte_flips(data)),
        st.tuples(st.just("utf16"), st.just(text.encode("utf-16"))),
        st.tuples(st.just("utf16_no_bom"), st.just(text.encode("utf-16-le"))),
    )


@pytest.mark.parametrize("spec", FILE_SPECS, ids=[s.source for s in FILE_SPECS])
def test_structured_label_file_survives_mangling(spec: FileSpec):
    base = _base(spec.source, spec.write)
    label = _label_path(spec, base)
    original = (base / label).read_bytes()
    baseline = get_source(spec.source).read_labels(base)
    assert baseline.items, f"{spec.source}: the unmangled demo file gives no items"
    # a re-encoding with a byte-order mark loses nothing; LIDC's XML declares UTF-8, so there it may not
    must_read = ("utf16",) if spec.source != "lidc_idri" else ()

    @FUZZ
    @given(byte_mutations(original))
    def check(mutation: tuple[str, bytes]) -> None:
        kind, data = mutation
        with _mangled(spec.source, spec.write, label, data) as root:
            try:
                result = get_source(spec.source).read_labels(root)
            except LabelFileError as err:
                _assert_names_file_and_line(err, root / label)
                assert kind not in must_read, f"{kind}: a faithful re-encoding was refused ({err})"
                return
        if kind == "utf16" and spec.source != "lidc_idri":  # XML declares UTF-8: re-encoding breaks it
            assert [i.native_id for i in result.items] == [i.native_id for i in baseline.items]
        # items lost to the mangling are accounted for: quarantined or withheld, never just gone
        missing = {i.native_id for i in baseline.items} - {i.native_id for i in result.items}
        if missing and spec.source == "chestx_det":
            assert result.quarantine or len(result.items) + len(result.quarantine) == result.rows_read
        if missing and spec.source in ("msd", "lidc_idri"):
            assert result.quarantine, (kind, missing)

    check()


# ----------------------------------------------------------------------------- Werewolf parsers
@pytest.fixture(scope="module")
def werewolf_raw() -> Iterator[Path]:
    from shardsmith.demo.werewolf_demo import demo_sidecar, demo_turns, write_werewolf_demo

    root = Path(tempfile.mkdtemp(prefix="fuzz-ww-"))
    write_werewolf_demo(root, video=False)
    vid = root / "werewolf_video"
    vid.mkdir()
    (vid / "game-1.mp4").write_bytes(b"")  # label statistics never read the media
    (vid / "game-1.json").write_text(json.dumps(demo_sidecar("game-1", demo_turns(), True), indent=1))
    yield root
    shutil.rmtree(root, ignore_errors=True)


WW_FILES = [
    ("werebench", "werebench/Season_9/01.srt"),
    ("werebench", "werebench/Season_9/01-GAME_CONFIG.py"),
    ("werewolf_among_us", "werewolf_among_us/data/Youtube/train.json"),
    ("werewolf_video", "werewolf_video/game-1.json"),
]


@pytest.mark.parametrize(("source", "label"), WW_FILES, ids=[f[1].rsplit("/", 1)[1] for f in WW_FILES])
def test_werewolf_label_file_survives_mangling(source: str, label: str, werewolf_raw: Path):
    from shardsmith.staging.games import build_game, discover_games, label_stats

    original = (werewolf_raw / label).read_bytes()
    published = _published(source, werewolf_raw)
    assert published, f"{source}: the unmangled demo game publishes nothing"

    @FUZZ
    @given(byte_mutations(original))
    def check(mutation: tuple[str, bytes]) -> None:
        kind, data = mutation
        with tempfile.TemporaryDirectory(prefix="fuzz-ww-ex-") as tmp:
            raw = Path(tmp)
            shutil.copytree(werewolf_raw / source, raw / source)
            (raw / label).write_bytes(data)
            try:
                refs = discover_games(source, raw / source)
            except LabelFileError as err:
                _assert_names_file_and_line(err, raw / label)
                assert kind != "utf16", f"a faithful UTF-16 (with BOM) re-encoding was refused ({err})"
                return
            if source == "werewolf_video":  # sidecar only: label statistics, no audio
                stats = label_stats(source, raw / source)
                assert stats["games"] == 1 and stats["quarantined_games"] in (0, 1), stats
                if stats["quarantined_games"]:
                    assert stats["quarantine_reasons"], stats
                    assert kind != "utf16", f"a faithful UTF-16 (with BOM) sidecar was quarantined: {stats}"
                elif kind == "utf16_no_bom":
                    raise AssertionError("a UTF-16 sidecar without BOM was read as fine")
                return
            for ref in refs:
                result = build_game(source, ref)
                assert result.reconciles(), result.counts
                for q in result.quarantine:
                    assert q["reason"] and q["detail"], q
            if kind == "utf16":  # good lines survive a faithful re-encoding: nothing lost
                assert _published(source, raw) == published

    check()


def _published(source: str, raw: Path) -> int:
    """Units (utterances, dialogue entries) a source's games publish; sidecar games count as one each."""
    from shardsmith.staging.games import build_game, discover_games, label_stats

    if source == "werewolf_video":
        stats = label_stats(source, raw / source)
        return stats["games"] - stats["quarantined_games"]
    return sum(build_game(source, ref).counts["published"] for ref in discover_games(source, raw / source))


def test_a_parser_that_refuses_every_file_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The property above is not satisfied by refusing: a parser that raises a well-formed
    ``LabelFileError`` (file and line named) on every mangled file must turn the fuzz test red."""
    spec = CSV_SPECS[0]
    cls = type(get_source(spec.source))
    honest = cls.read_labels

    def refuse(self, root: Path):
        root = Path(root)
        if root.name == spec.source and root.parent.name.startswith("fuzz-ex-"):
            path = next(p for p in (root / spec.label, root / f"{spec.label}.gz") if p.exists())
            raise LabelFileError(f"{path}: line 1: refused")
        return honest(self, root)

    monkeypatch.setattr(cls, "read_labels", refuse)
    with pytest.raises((AssertionError, ExceptionGroup)) as failed:  # hypothesis groups distinct failures
        fuzz_csv_parser(spec)
    assert "refused a file whose rows" in "".join(traceback.format_exception(failed.value))


def test_sidecar_reader_reports_each_problem(tmp_path: Path):
    from shardsmith.demo.werewolf_demo import demo_sidecar, demo_turns
    from shardsmith.sources.werewolf.werewolf_video import SidecarError, load_sidecar

    side = demo_sidecar("g", demo_turns(), True)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(side))
    assert load_sidecar(path)["game_id"] == "g"
    path.write_text(json.dumps(side, indent=1)[:-30])
    with pytest.raises(SidecarError) as err:
        load_sidecar(path)
    assert err.value.reason == "sidecar_invalid" and "g.json: line" in err.value.detail
