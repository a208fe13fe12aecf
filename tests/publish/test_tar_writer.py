"""The template tar writer writes the bytes ``tarfile`` writes for the same members."""

from __future__ import annotations

import io
import tarfile

from shardsmith.publish.tar_writer import ShardWriter, member_info, ustar_header


def _tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            tar.addfile(member_info(name, len(data)), io.BytesIO(data))
    return buf.getvalue()


MEMBERS = [
    ("r0a1b2c3.json", b'{"a": 1}'),
    ("r0a1b2c3.png", bytes(range(256)) * 5),
    ("exact-512.bin", b"x" * 512),
    ("empty.txt", b""),
    ("caf\u00e9_\u00fcml\u00e4ut.json", "\u00e9".encode() * 700),
    ("d" * 100, b"name of exactly 100 bytes"),
    ("dir/" * 30 + "long-name-goes-to-the-prefix.json", b"{}"),
]


def test_headers_match_tarfile():
    for name, data in MEMBERS:
        assert ustar_header(name, len(data)) == member_info(name, len(data)).tobuf(
            tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"), name


def test_shards_match_tarfile_byte_for_byte(tmp_path):
    for k in range(len(MEMBERS) + 1):  # several lengths: the end padding differs
        path = tmp_path / f"s{k}.tar"
        w = ShardWriter(path)
        for name, data in MEMBERS[:k]:
            w.add(name, data)
        w.close()
        assert path.read_bytes() == _tarfile_bytes(MEMBERS[:k])
        with tarfile.open(path) as tar:
            assert [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()] == MEMBERS[:k]
