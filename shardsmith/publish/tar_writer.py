"""WebDataset shards written without ``tarfile``'s per-member Python work.

A release writes two or more tar members per record (335,000 records: 700,000 headers), and
``tarfile.TarFile.addfile`` builds each USTAR header field by field (0.15 ms per record in the
profile of a 112,120-record build). Every member of a release has the same fixed metadata
(mtime 0, mode 0444, uid/gid 0, owner ``shardsmith``), so the header is a template: only the name,
the size and the checksum change. The bytes are those ``tarfile`` writes with
``format=USTAR_FORMAT`` (a test compares them); names over 100 bytes go through ``tarfile``'s own
header code, which splits them into prefix and name as USTAR requires.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks, as tarfile pads the end of an archive
OWNER = "shardsmith"


def member_info(name: str, size: int) -> tarfile.TarInfo:
    """The fixed metadata every release member carries (reproducible shards)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = OWNER
    return info


_TEMPLATE = bytearray(member_info("", 0).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
_TEMPLATE[148:156] = b"        "  # checksum computed per member over this field as spaces
# The checksum is the sum of the header's bytes: the template's (its name field is zeros) less its
# size field, plus the member's name and size fields, without summing 512 bytes per member.
_TEMPLATE_SUM = sum(_TEMPLATE) - sum(_TEMPLATE[124:136])
_ZEROS = bytes(BLOCK)


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte USTAR header ``tarfile`` would write for a release member."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 100:
        return member_info(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    if size >= 8 ** 11:
        raise ValueError(f"{name}: {size} bytes do not fit a USTAR size field")
    size_field = b"%011o\0" % size
    header = _TEMPLATE.copy()
    header[0:len(raw)] = raw
    header[124:136] = size_field
    header[148:155] = b"%06o\0" % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return bytes(header)


class ShardWriter:
    """One tar shard: ``add(name, data)`` per member, ``close()`` writes the end blocks."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115  # closed by close()
        self.offset = 0

    def add(self, name: str, data: bytes) -> None:
        pad = -len(data) % BLOCK
        self.fh.write(ustar_header(name, len(data)))
        self.fh.write(data)
        if pad:
            self.fh.write(_ZEROS[:pad])
        self.offset += BLOCK + len(data) + pad

    def close(self) -> None:
        end = 2 * BLOCK
        end += -(self.offset + end) % RECORD
        self.fh.write(bytes(end))
        self.fh.close()
