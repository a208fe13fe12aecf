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
import re
from collections.abc import Callable
from typing import Any

import numpy as np

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
    members = [(f"{key}.json", json.dumps(meta, sort_keys=True, ensure_ascii=False,
                                          default=_json_default).encode())]
    for col in spec.media:
        data = media_bytes(row.get(col))
        if data:
            members.append((f"{key}.{spec.media_extension(col, row)}", data))
    return members


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
