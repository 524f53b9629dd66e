"""Write-ahead log: every acknowledged change is on disk before the caller hears "done".

A log file is a sequence of records, each ``length (4 bytes, little-endian) | crc32 (4) |
payload``. A crash can leave a torn record at the end; replay stops at the first record
whose length or checksum does not hold, and the writer truncates that tail on open, so a
torn write is never mistaken for data.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

HEADER = struct.Struct("<II")
MAX_RECORD = 1 << 30


def read_records(path: Path) -> tuple[list[bytes], int]:
    """All intact records of ``path`` and the byte length they cover."""
    records, good = [], 0
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        pos = good = end
    return records, good


class WalWriter:
    """Appends records durably (write + fsync) to one log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _, good = read_records(path)
        self._fh = open(path, "ab")
        if self._fh.tell() != good:  # a torn tail from a crash
            self._fh.truncate(good)
            self._fh.seek(good)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        fsync_dir(path.parent)

    def append(self, payloads: list[bytes]) -> None:
        buf = b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        self._fh.write(buf)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def size(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


def iter_records(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        yield from read_records(path)[0]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
