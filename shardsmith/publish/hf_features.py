"""Hugging Face ``datasets`` Features in every Parquet schema a release writes.

``datasets.load_dataset("parquet", ...)`` reads the ``huggingface`` key of the Arrow schema
metadata; without it a ``{bytes, path}`` image column comes back as a plain dict. The features are
derived generically: ``datasets`` converts the Arrow schema (``Features.from_arrow_schema``: Value
types, lists, structs) and each struct media column of the table's ``TableSpec`` becomes the
feature its WebDataset extension names (``png`` -> ``Image()``, ``flac`` -> ``Audio()``). Binary
media (``.npy`` volumes) stay ``Value("binary")``: ``datasets`` has no N-d array file feature.

``datasets`` is the optional ``hf`` extra; without it releases are written without the key (and a
warning), so a lean install still publishes.
"""

from __future__ import annotations

import json
import logging

import pyarrow as pa

from shardsmith.schemas.tables import TableSpec

log = logging.getLogger(__name__)

# WebDataset extension of a media column -> the datasets feature class that decodes it.
MEDIA_FEATURES: dict[str, str] = {"png": "Image", "jpg": "Image", "jpeg": "Image", "flac": "Audio", "wav": "Audio",
                                  "mp3": "Audio"}
HF_METADATA_KEY = b"huggingface"
_warned = False


def hf_features(schema: pa.Schema, spec: TableSpec):
    """The ``datasets.Features`` of a table: Arrow-derived, media columns decoded as Image/Audio."""
    import datasets

    features = datasets.Features.from_arrow_schema(schema.remove_metadata())
    media_struct = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    for col, ext in spec.media.items():
        kind = MEDIA_FEATURES.get(ext.rsplit(".", 1)[-1])
        if kind and col in schema.names and schema.field(col).type == media_struct:
            features[col] = getattr(datasets, kind)()
    return features


def with_hf_features(schema: pa.Schema, spec: TableSpec) -> pa.Schema:
    """``schema`` with the ``huggingface`` metadata key ``datasets`` itself writes
    (``{"info": {"features": ...}}``); unchanged when ``datasets`` is not installed."""
    global _warned
    try:
        features = hf_features(schema, spec)
    except ImportError:
        if not _warned:
            log.warning("`datasets` is not installed (pip install 'shardsmith[hf]'): releases carry no "
                        "Hugging Face Features, so load_dataset returns images/audio as raw structs")
            _warned = True
        return schema
    meta = dict(schema.metadata or {})
    meta[HF_METADATA_KEY] = json.dumps({"info": {"features": features.to_dict()}}).encode()
    return schema.with_metadata(meta)
