"""The medical record contract (DESIGN section 3): one row per 2D image or volume slice.

Bump RECORDS_SCHEMA_VERSION on any change a reader would notice.
"""

from __future__ import annotations

import pyarrow as pa

RECORDS_SCHEMA_VERSION = "1.5.0"  # 1.4.0: study_day, study_order, report_sections, image_group; 1.5.0: media_type

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

FINDING_TYPE = pa.struct(
    [
        pa.field("label", pa.string()),  # canonical label (schemas/vocabulary)
        pa.field("source_label", pa.string()),  # verbatim from the source
        pa.field("status", pa.string()),  # present | absent | uncertain
        pa.field("readers", pa.list_(pa.string())),  # readers who asserted this status, if known
    ]
)

MASK_RLE_TYPE = pa.struct(
    [pa.field("size", pa.list_(pa.int32())), pa.field("counts", pa.string())]
)

TARGET_TYPE = pa.struct(
    [
        pa.field("target_id", pa.string()),
        pa.field("label", pa.string()),
        pa.field("kind", pa.string()),  # abnormality | anatomy
        pa.field("box_xyxy", pa.list_(pa.float32())),  # absolute corners in stored-image pixels
        pa.field("mask_rle", MASK_RLE_TYPE),  # COCO compressed RLE over the stored image
        pa.field("area_px", pa.float64()),  # mask area if a mask, else box area
        pa.field("reader", pa.string()),
        pa.field("source_geometry", pa.string()),  # e.g. xywh@1024, xyxy@native, siim-rle, polygon
        pa.field("text", pa.string()),  # grounding phrase tied to this target (MS-CXR), if any
    ]
)

REPORT_SECTION_TYPE = pa.struct([pa.field("name", pa.string()), pa.field("text", pa.string())])

RECORDS_SCHEMA = pa.schema(
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
        pa.field("view", pa.string()),
        pa.field("sequence", pa.string()),
        pa.field("channel_names", pa.list_(pa.string())),
        pa.field("sex", pa.string()),
        pa.field("age_band", pa.string()),
        pa.field("image", IMAGE_TYPE),
        # What ``image.bytes`` holds: image/png, or image/jpeg for a JPEG stored as it came.
        pa.field("media_type", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("pixel_spacing_mm", pa.list_(pa.float32())),  # [row, col] after resizing
        pa.field("slice_index", pa.int32()),
        pa.field("num_slices", pa.int32()),
        pa.field("intensity", pa.string()),
        pa.field("abnormal", pa.bool_()),
        pa.field("complete", pa.bool_(), nullable=False),
        pa.field("findings", pa.list_(FINDING_TYPE)),
        pa.field("targets", pa.list_(TARGET_TYPE)),
        pa.field("text", pa.string()),
        pa.field("raw_path", pa.string()),
        pa.field("raw_sha256", pa.string()),
        pa.field("adapter_version", pa.string()),
        pa.field("fingerprint", pa.binary()),  # shardsmith.identity.fingerprint layout; null if none
        pa.field("duplicate_group", pa.string()),  # set by the duplicates stage before the release
        # Days since the patient's first study in the source (never a date) and the study's 1-based
        # order among the patient's studies; null where the source gives neither.
        pa.field("study_day", pa.int32()),
        pa.field("study_order", pa.int32()),
        pa.field("report_sections", pa.list_(REPORT_SECTION_TYPE)),  # the study's report by section
        # Records showing the same radiograph (exact or perceptual image edges only, no patient
        # links; duplicate_group also joins a patient's records): set by the duplicates stage.
        pa.field("image_group", pa.string()),
    ],
    metadata={"shardsmith.schema": "records", "shardsmith.schema_version": RECORDS_SCHEMA_VERSION},
)

SPLITS = ("train", "val", "test")
SPLIT_SOURCES = ("official", "seeded")  # split_source values
FINDING_STATUSES = ("present", "absent", "uncertain")
TARGET_KINDS = ("abnormality", "anatomy")
# A stored image's media type -> the extension of its file name and WebDataset member.
MEDIA_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}
MEDIA_TYPES = tuple(MEDIA_EXTENSIONS)
