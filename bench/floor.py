"""The floor: decode + window + resize + PNG-encode each DICOM and nothing else, in one process.

It calls shardsmith's own media functions (``decode_dicom`` + ``encode_png``, same settings as a
build: longest side 1024, 8-bit), so ``build - floor`` is exactly the pipeline's overhead
(catalog, checksums, process pool, Parquet, validation, release) and ``floor / 2`` is what a
perfect use of two cores would reach. ``--plain`` times the plain script's per-image function
instead (pydicom ``apply_voi_lut`` + uint8 resize + OpenCV's default PNG settings).

    python -m bench.floor RAW_DIR [--plain]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(raw: Path, plain: bool = False) -> int:
    total = 0
    files = sorted((raw / "train").glob("*.dicom"))
    if plain:
        from bench.plain_script import decode_resize_encode

        for path in files:
            total += len(decode_resize_encode(path)[0])
    else:
        from shardsmith.media.dicom import decode_dicom
        from shardsmith.media.raster import encode_png

        for path in files:
            total += len(encode_png(decode_dicom(path), 1024, 8).png)
    print(json.dumps({"images": len(files), "png_bytes": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--plain" in sys.argv[2:]))
