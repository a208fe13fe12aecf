"""The one WebDataset sample codec: how a table row becomes tar members and how they come back.

The release writer (``publish.release``) calls :func:`encode_sample`; every loader calls
:func:`decode_sample`, so the two can never drift apart. A sample is ``<key>.json`` (every
non-media column) plus one member per media column, named ``<key>.<ext>`` with the extension the
table's :class:`~shardsmith.schemas.tables.TableSpec` gives it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shardsmith.schemas.tables import TableSpec

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def wds_key(value: Any) -> str:
    """WebDataset splits keys at the first dot, so keys keep only [A-Za-z0-9_-]."""
    return _KEY_SAFE.sub("_", str(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def media_bytes(value: Any) -> bytes | None:
    """The payload of a media cell: a ``{bytes, path}`` struct or plain binary."""
    data = value.get("bytes") if isinstance(value, dict) else value
    return bytes(data) if data else None


def encode_sample(row: dict, spec: TableSpec, key: str) -> list[tuple[str, bytes]]:
    """Tar members ``(name, bytes)`` of one row, in a fixed order (json first, then media)."""
    meta = {col: value for col, value in row.items() if col not in spec.media}
    members = [(f"{key}.json", json.dumps(meta, **_JSON_OPTIONS).encode())]
    for col in spec.media:
        data = media_bytes(row.get(col))
        if data:
            members.append((f"{key}.{spec.media_extension(col, row)}", data))
    return members


_JSON_OPTIONS = {"sort_keys": True, "ensure_ascii": False, "default": _json_default}
# What ``json.dumps(ensure_ascii=False)`` escapes in a string: quote, backslash, control characters.
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def _json_float(value: float | None) -> str:
    """``json.dumps`` of a float: its repr, NaN and infinities spelled as the json module does."""
    if value is None:
        return "null"
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def json_texts(array: pa.Array) -> pa.Array:
    """The ``json.dumps(value, sort_keys=True, ensure_ascii=False)`` text of every value of ``array``
    (as :func:`encode_sample` writes it for the value ``to_pylist`` gives), built column by column.

    A release writes one JSON member per row; making each row a Python dict first (``to_pylist``)
    and dumping it was most of the writer's time. Strings, integers, booleans, lists and structs are
    joined with Arrow string kernels; only floats (Python's repr) and strings that need escaping go
    through Python, value by value; any other type falls back to ``json.dumps`` of its values."""
    t = array.type
    if pa.types.is_dictionary(t):
        return json_texts(array.cast(t.value_type))
    if pa.types.is_null(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
            or pa.types.is_fixed_size_binary(t):
        return pa.array(["null"] * len(array), pa.string())  # bytes are dumped as null (_json_default)
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        return pc.fill_null(pc.cast(array, pa.string()), "null")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        array = array.cast(pa.string())
        quoted = pc.binary_join_element_wise('"', array, '"', "")
        escape = pc.fill_null(pc.match_substring_regex(array, _NEEDS_ESCAPE), False)
        if pc.any(escape).as_py():
            where = pc.indices_nonzero(escape)
            texts = [json.dumps(v, ensure_ascii=False) for v in pc.take(array, where).to_pylist()]
            quoted = pc.replace_with_mask(quoted, escape, pa.array(texts, pa.string()))
        return pc.fill_null(quoted, "null")
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return pa.array([_json_float(v) for v in array.to_pylist()], pa.string())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        array = array.cast(pa.list_(t.value_type)) if pa.types.is_large_list(t) else array
        offsets = array.offsets  # a sliced array's offsets point into its whole child: rebase them
        first, last = offsets[0].as_py(), offsets[-1].as_py()
        values = json_texts(array.values.slice(first, last - first))
        items = pa.ListArray.from_arrays(pc.subtract(offsets, first), values, mask=array.is_null())
        joined = pc.binary_join_element_wise("[", pc.binary_join(items, ", "), "]", "")
        return pc.fill_null(joined, "null")
    if pa.types.is_struct(t) and len({f.name for f in t}) == t.num_fields:
        children = dict(zip([f.name for f in t], array.flatten(), strict=True))
        parts: list = []
        for name in sorted(children):
            parts += [("{" if not parts else ", ") + json.dumps(name, ensure_ascii=False) + ": ",
                      json_texts(children[name])]
        joined = pc.binary_join_element_wise(*parts, "}", "") if parts else pa.array(["{}"] * len(array))
        return pc.if_else(array.is_null(), pa.scalar("null"), joined)
    return pa.array([json.dumps(v, **_JSON_OPTIONS) for v in array.to_pylist()], pa.string())


def json_members(table: pa.Table, spec: TableSpec) -> list[bytes]:
    """The ``<key>.json`` member of every row of ``table``: the same bytes :func:`encode_sample`
    writes for the row, made from the Arrow columns without a Python dict per row."""
    meta = table.drop_columns([c for c in spec.media if c in table.column_names]).combine_chunks()
    if not meta.num_columns:
        return [b"{}"] * meta.num_rows
    struct = pa.StructArray.from_arrays([c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in meta.columns],
                                        names=meta.column_names)
    return json_texts(struct).cast(pa.binary()).to_pylist()


def _image(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _audio(data: bytes) -> dict[str, Any]:
    """FLAC/WAV bytes -> ``{"array": mono float32 in [-1, 1], "sampling_rate": int}`` (the shape
    ``datasets.Audio`` decodes to), through PyAV's bundled FFmpeg."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(stream)
                  for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    array = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return {"array": array, "sampling_rate": int(rate)}


# Member extension -> (decoded sample key, decoder). ``<name>.npy`` members decode to ``<name>``.
_DECODERS: dict[str, tuple[str, Callable[[bytes], Any]]] = {
    "png": ("image", _image),
    "jpg": ("image", _image),
    "jpeg": ("image", _image),
    "flac": ("audio", _audio),
    "wav": ("audio", _audio),
}


def _decode_rle(rle: dict) -> np.ndarray:
    from shardsmith.media.masks import coco_rle_decode

    return coco_rle_decode(rle).astype(bool)


def decode_targets(meta: dict) -> dict[str, Any]:
    """``boxes`` (N x 4 float32 xyxy, NaN where a target has no box), ``labels``, ``masks`` (bool
    arrays or None) from a record's ``targets``; empty when the row has no ``targets`` column."""
    targets = meta.get("targets")
    if targets is None:
        return {}
    return {
        "boxes": np.array([t["box_xyxy"] or [np.nan] * 4 for t in targets], np.float32).reshape(-1, 4),
        "labels": [t["label"] for t in targets],
        "masks": [_decode_rle(t["mask_rle"]) if t.get("mask_rle") else None for t in targets],
    }


def decode_sample(sample: dict) -> dict[str, Any]:
    """A raw WebDataset sample (``__key__`` + member extension -> bytes) decoded: ``key``,
    ``meta`` (the JSON record), media arrays (``image``, ``<name>`` for ``<name>.npy``, ``audio``
    as ``{array, sampling_rate}``) and, for records, ``boxes``/``labels``/``masks``."""
    meta = json.loads(sample["json"])
    out: dict[str, Any] = {"key": sample["__key__"], "meta": meta}
    for ext, data in sample.items():
        if ext in ("json", "__key__", "__url__", "__local_path__") or not isinstance(data, bytes):
            continue
        if ext.endswith(".npy"):
            out[ext.removesuffix(".npy")] = _npy(data)
        elif ext in _DECODERS:
            name, decode = _DECODERS[ext]
            out[name] = decode(data)
    out.update(decode_targets(meta))
    return out


def decode_row(row: dict, spec: TableSpec, key: str | None = None) -> dict[str, Any]:
    """A Parquet row decoded exactly as its WebDataset sample would be (map-style loaders)."""
    key = key or wds_key(row.get(spec.key_column))
    sample: dict[str, Any] = {"__key__": key}
    for name, data in encode_sample(row, spec, key):
        sample[name[len(key) + 1:]] = data
    return decode_sample(sample)
