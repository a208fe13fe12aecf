"""The ``volumes`` table: one row per 3D volume (CT/MR case), for 3D consumers.

Volumes are stored reoriented to LPS+ and resampled to a fixed spacing (see
``shardsmith.media.volume``). ``image_npy`` and ``label_npy`` hold ``numpy.save`` bytes; the
release writer puts them in WebDataset as ``<key>.image.npy`` and ``<key>.label.npy``.

Array conventions:

* ``image_npy``: ``[C, Z, Y, X]`` (C = len(channel_names), 1 for CT); int16 HU for CT, float32
  raw scanner units for MR (no windowing: ``intensity`` says so).
* ``label_npy``: ``[Z, Y, X]`` uint8/uint16 label map; ``label_names`` maps each value to its
  canonical label; null when the case has no labels (e.g. an official test image).
* ``shape`` is the full ``image_npy`` shape; ``spacing_mm`` is ``[z, y, x]``; ``affine_lps`` is the
  row-major 4x4 matrix from array index ``(z, y, x, 1)`` to LPS world millimetres.

Bump VOLUMES_SCHEMA_VERSION on any change a reader would notice.
"""

from __future__ import annotations

import pyarrow as pa

VOLUMES_SCHEMA_VERSION = "1.1.0"

LABEL_NAME_TYPE = pa.struct(
    [
        pa.field("value", pa.int32()),  # voxel value in label_npy
        pa.field("label", pa.string()),  # canonical label (schemas/vocabulary)
        pa.field("source_label", pa.string()),  # verbatim from the source
        pa.field("kind", pa.string()),  # abnormality | anatomy
    ]
)

VOLUMES_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("native_id", pa.string(), nullable=False),
        pa.field("patient_id", pa.string()),
        pa.field("study_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        # official: the dataset's own split (or its patient's); seeded: drawn from the public split
        # seed and the native patient id. split_official == (split_source == "official").
        pa.field("split_source", pa.string()),
        pa.field("split_official", pa.bool_()),
        pa.field("modality", pa.string()),
        pa.field("body_part", pa.string()),
        pa.field("channel_names", pa.list_(pa.string())),
        pa.field("shape", pa.list_(pa.int32())),
        pa.field("spacing_mm", pa.list_(pa.float32())),  # [z, y, x]
        pa.field("orientation", pa.string()),  # "LPS": array axes x -> L, y -> P, z -> S
        pa.field("affine_lps", pa.list_(pa.float64())),  # 16 values, (z, y, x, 1) -> LPS mm
        pa.field("native_shape", pa.list_(pa.int32())),  # [z, y, x] before resampling (canonical)
        pa.field("native_spacing_mm", pa.list_(pa.float32())),  # [z, y, x] before resampling
        pa.field("image_npy", pa.binary()),
        pa.field("label_npy", pa.binary()),
        pa.field("label_names", pa.list_(LABEL_NAME_TYPE)),
        pa.field("intensity", pa.string()),
        pa.field("annotations_json", pa.string()),  # source-specific extras (e.g. LIDC nodule ratings)
        pa.field("raw_path", pa.string()),
        pa.field("raw_sha256", pa.string()),
        pa.field("adapter_version", pa.string()),
    ],
    metadata={"shardsmith.schema": "volumes", "shardsmith.schema_version": VOLUMES_SCHEMA_VERSION},
)
