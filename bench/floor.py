"""The floor: decode + window + resize + PNG-encode each DICOM and nothing else.

It calls shardsmith's own media functions (``decode_dicom`` + ``encode_png``, same settings as a
build: longest side 1024, 8-bit), so ``build - floor`` is exactly the pipeline's overhead
(catalog, checksums, process pool, Parquet, validation, release). ``--cores N`` splits the images
over a ``multiprocessing.Pool`` of N processes (issue 24 target 6): the two-core floor is measured,
not assumed to be half the one-core one.

    python -m bench.floor RAW_DIR [--cores N]
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path


def encoded_size(path: Path) -> int:
    from shardsmith.media.dicom import decode_dicom
    from shardsmith.media.raster import encode_png

    return len(encode_png(decode_dicom(path), 1024, 8).png)


def main(raw: Path, cores: int = 1) -> int:
    files = sorted((raw / "train").glob("*.dicom"))
    if cores > 1:
        with multiprocessing.Pool(cores) as pool:
            total = sum(pool.imap_unordered(encoded_size, files, chunksize=1))
    else:
        total = sum(map(encoded_size, files))
    print(json.dumps({"images": len(files), "png_bytes": total, "cores": cores}))
    return 0


if __name__ == "__main__":
    args = sys.argv[2:]
    sys.exit(main(Path(sys.argv[1]), int(args[args.index("--cores") + 1]) if "--cores" in args else 1))
