"""Pictures people look at before trusting a materialisation: a contact sheet and a label chart.

Plain library code (no Dagster): the assets attach the files these functions write as
metadata, and a notebook can call them on any staged records file.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

TILE = 192
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230)]


def _to_rgb(png: bytes) -> Image.Image:
    """Decode a stored image (8- or 16-bit grey, or colour) into 8-bit RGB for drawing."""
    img = Image.open(io.BytesIO(png))
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr.astype(np.float32) - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3])


def _mask(rle: dict | None) -> np.ndarray | None:
    if not rle or not rle.get("counts"):
        return None
    from shardsmith.media.masks import coco_rle_decode

    return coco_rle_decode(rle).astype(bool)


def draw_record(row: dict, max_side: int | None = None) -> Image.Image:
    """One record's image with its masks tinted and its boxes outlined, colour by label.

    With ``max_side`` the image is shrunk first and masks and boxes follow it, so a contact sheet
    tints thumbnails instead of full-size images (most of a preview's cost otherwise).
    """
    img = _to_rgb(row["image"]["bytes"])
    scale = 1.0
    if max_side and max(img.size) != max_side:  # shrink big images smoothly, blow small ones up crisply
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.BOX if scale < 1 else Image.NEAREST)
    base = np.asarray(img).astype(np.float32)
    labels: dict[str, tuple[int, int, int]] = {}
    targets = row.get("targets") or []
    for t in targets:
        colour = labels.setdefault(t["label"], COLOURS[len(labels) % len(COLOURS)])
        m = _mask(t.get("mask_rle"))
        if m is not None and scale != 1.0:
            m = np.asarray(Image.fromarray(m).resize((base.shape[1], base.shape[0]), Image.NEAREST))
        if m is not None and m.shape == base.shape[:2]:
            base[m] = base[m] * 0.55 + np.array(colour, np.float32) * 0.45
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 200))
    for t in targets:
        box = t.get("box_xyxy")
        if box is not None and len(box) == 4:
            draw.rectangle([float(v) * scale for v in box], outline=labels[t["label"]], width=width)
    return img


def contact_sheet(records: Path, out: Path, n: int = 12, columns: int = 4) -> Path | None:
    """Write a PNG grid of the first ``n`` records (boxes and masks drawn); None if there are none."""
    pf = pq.ParquetFile(records)
    if pf.metadata.num_rows == 0:
        return None
    cols = ["native_id", "image", "targets", "abnormal"]
    rows = next(pf.iter_batches(batch_size=n, columns=cols)).to_pylist()
    rows = [r for r in rows if r["image"] and r["image"]["bytes"]]
    if not rows:
        return None
    return _sheet(rows, out, columns)


def label_chart(distribution: dict[str, int], out: Path, top: int = 20) -> Path | None:
    """A horizontal bar chart PNG of label counts (matplotlib); None if it is not installed or empty."""
    if not distribution:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    items = sorted(distribution.items(), key=lambda kv: (-kv[1], kv[0]))[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 0.8), dpi=100)
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3778bf")
    ax.set_xlabel("records with the label present")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def label_bars_markdown(distribution: dict[str, int], width: int = 30) -> str:
    """The same distribution as a markdown table with text bars (works without matplotlib)."""
    if not distribution:
        return "_no labels present_"
    peak = max(distribution.values()) or 1
    lines = ["| label | records | |", "| --- | ---: | --- |"]
    for k, v in sorted(distribution.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {k} | {v} | `{'█' * max(1, round(v / peak * width))}` |")
    return "\n".join(lines)


def _rank(record_id: str, label: str) -> int:
    """A stable pseudo-random rank: the sample is spread over every bucket and file, not the first rows."""
    return int.from_bytes(hashlib.sha256(f"{label}\x1f{record_id}".encode()).digest()[:8], "big")


SAMPLE_SLACK = 8  # candidates ranked beyond ``per_label``: stand-ins for chosen rows without image bytes


def sample_by_label(files: list[Path], per_label: int = 8, batch_rows: int = 8192) -> dict[str, list[dict]]:
    """Up to ``per_label`` records for each present label that hold image bytes, chosen by a stable
    hash of the record id over every staged file.

    The first pass reads only ``record_id`` and ``findings``, finds each record's present labels with
    Arrow (no Python row per record) and keeps the ``per_label + SAMPLE_SLACK`` best-ranked (record,
    label) pairs; the second reads back those rows' row groups alone, as dicts, and drops rows
    without image bytes. Reading every record's image column only to ask whether it is empty was the
    release's largest allocation (issue 24). The sample is exactly the rule's: when a label's kept
    candidates run out of rows with images before ``per_label`` while more candidates exist, the
    label is ranked again with the image column read (``_rank_pairs(..., require_image=True)``)."""
    cols = ["record_id", "native_id", "image", "targets", "findings", "abnormal"]
    kept = _rank_pairs(files, per_label + SAMPLE_SLACK, batch_rows, require_image=False)
    rows = _rows_at(files, {where for heap in kept.values() for _, where in heap}, cols)
    out: dict[str, list[dict]] = {}
    short: set[str] = set()
    for label, heap in sorted(kept.items()):
        ordered = [rows[where] for _, where in sorted(heap, key=lambda t: -t[0])]
        with_image = [r for r in ordered if r["image"] and r["image"]["bytes"]]
        if len(with_image) < per_label and len(heap) == per_label + SAMPLE_SLACK:
            short.add(label)  # the rows with images may lie further down the ranking
        elif with_image:
            out[label] = with_image[:per_label]
    if short:
        exact = _rank_pairs(files, per_label, batch_rows, require_image=True, labels=short)
        again = _rows_at(files, {where for heap in exact.values() for _, where in heap}, cols)
        for label, heap in exact.items():
            out[label] = [again[where] for _, where in sorted(heap, key=lambda t: -t[0])]
    return dict(sorted(out.items()))


def _rank_pairs(files: list[Path], size: int, batch_rows: int, require_image: bool,
                labels: set[str] | None = None) -> dict[str, list[tuple[int, tuple[int, int]]]]:
    """Per label, a heap of the ``size`` best-ranked (-rank, (file index, row)) present pairs."""
    kept: dict[str, list[tuple[int, tuple[int, int]]]] = {}
    read = ["record_id", "findings", "image"] if require_image else ["record_id", "findings"]
    for k, f in enumerate(files):
        pf = pq.ParquetFile(f)
        if not {"record_id", "findings", "image"} <= set(pf.schema_arrow.names):
            continue
        offset = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=read):
            for position, label, record_id in _present_pairs(batch):
                if labels is not None and label not in labels:
                    continue
                heap = kept.setdefault(label, [])
                item = (-_rank(record_id, label), (k, offset + position))
                if len(heap) < size:
                    heapq.heappush(heap, item)
                elif item[0] > heap[0][0]:
                    heapq.heapreplace(heap, item)
            offset += batch.num_rows
    return kept


def _present_pairs(batch: pa.RecordBatch) -> list[tuple[int, str, str]]:
    """(row, label, record id) once per label present in a row (that holds image bytes, when the
    batch carries the image column)."""
    findings = batch.column("findings")
    flat = pc.list_flatten(findings)
    parent = pc.list_parent_indices(findings)
    keep = pc.fill_null(pc.equal(flat.field("status"), "present"), False)
    if "image" in batch.schema.names:
        image = batch.column("image")
        payload = pc.struct_field(image, "bytes") if pa.types.is_struct(image.type) else image
        has_image = pc.fill_null(pc.greater(pc.binary_length(payload), 0), False)
        keep = pc.and_(keep, pc.take(has_image, parent))
    rows = pc.filter(parent, keep).to_pylist()
    labels = pc.filter(flat.field("label"), keep).to_pylist()
    ids = pc.take(batch.column("record_id"), pa.array(rows, pa.int64())).to_pylist()
    return list(dict.fromkeys(zip(rows, labels, ids, strict=True)))


def _rows_at(files: list[Path], wanted: set[tuple[int, int]], cols: list[str]) -> dict[tuple[int, int], dict]:
    """The rows at (file index, row number) as dicts of ``cols``, reading only their row groups."""
    out: dict[tuple[int, int], dict] = {}
    for k in sorted({k for k, _ in wanted}):
        pf = pq.ParquetFile(files[k])
        names = [c for c in cols if c in pf.schema_arrow.names]
        positions = sorted(i for j, i in wanted if j == k)
        start = 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            local = [i - start for i in positions if start <= i < start + n]
            if local:
                picked = pf.read_row_group(g, columns=names).take(pa.array(local, pa.int64()))
                out.update({(k, start + i): row for i, row in zip(local, picked.to_pylist(), strict=True)})
            start += n
    return out


def _sheet(rows: list[dict], out: Path, columns: int = 4) -> Path:
    ncol = min(columns, len(rows))
    sheet = Image.new("RGB", (ncol * TILE, math.ceil(len(rows) / ncol) * (TILE + 14)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        tile = draw_record(row, max_side=TILE)
        x, y = (i % ncol) * TILE, (i // ncol) * (TILE + 14)
        sheet.paste(tile, (x + (TILE - tile.width) // 2, y + (TILE - tile.height) // 2))
        draw.text((x + 3, y + TILE + 1), f"{str(row['native_id'])[:22]} ({len(row['targets'] or [])})",
                  fill=(220, 220, 220))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def label_pictures(files: list[Path], out_dir: Path, distribution: dict[str, int], per_label: int = 8) -> list[str]:
    """The release's pictures: the label chart and one contact sheet per label, sampled across all
    buckets. Returns markdown lines for the card (paths relative to the release folder)."""
    lines: list[str] = []
    chart = label_chart(distribution, out_dir / "labels.png")
    if chart:
        lines += ["## Label chart", "", f"![labels]({out_dir.name}/labels.png)", ""]
    samples = sample_by_label(files, per_label)
    if samples:
        lines += ["## Examples per label", "",
                  f"Up to {per_label} records per label, chosen by a stable hash of the record id across "
                  "every partition; boxes outlined, masks tinted.", ""]
    for label, rows in samples.items():
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        _sheet(rows, out_dir / f"contact-{safe}.png")
        lines += [f"### {label}", "", f"![{label}]({out_dir.name}/contact-{safe}.png)", ""]
    return lines
