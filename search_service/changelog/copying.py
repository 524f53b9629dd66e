"""Whole-stream operations, with no search service and no photo involved: read a layout's
changes in order, back the stream up to a file and restore it, and copy a layout of N
shards into one of M (re-sharding) while the old shards keep serving.

A backup file: the line ``landmark-changelog 1``, then per change its subject and payload,
each as a little-endian uint32 length and the bytes, and a CRC-32 of both (a damaged
file is refused, not half restored).
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..sharding import shard_of
from .batches import BATCH_LIMIT
from .stream import Changelog
from .subjects import image_of, subject

MAGIC = b"landmark-changelog 1\n"
_LEN = struct.Struct("<I")
BATCH = 100  # changes published at once when restoring or copying


class BadBackup(ValueError):
    pass


def read(
    changelog: Changelog, pattern: str, follow: threading.Event | None = None
) -> Iterator[tuple[str, bytes]]:
    """(subject, payload) of every message of ``pattern`` in the stream, in order; then, with
    ``follow``, the ones that come, until ``follow`` is set."""
    got: queue.Queue[tuple[int, str, bytes]] = queue.Queue()
    last = changelog.follow(pattern, 0, lambda seq, name, data, _: got.put((seq, name, data)))
    seen = 0
    while follow is not None or seen < last:
        try:
            seq, name, data = got.get(timeout=0.5)
        except queue.Empty:
            if follow is not None and follow.is_set():
                return
            continue
        seen = seq
        yield name, data


def publish_all(
    changelog: Changelog, changes: Iterator[tuple[str, bytes]], batch_size: int = BATCH
) -> int:
    """Publish ``changes`` unconditionally, ``batch_size`` at a time; how many there were."""
    batch: list[tuple[str, bytes, int | None]] = []
    count = 0
    for name, data in changes:
        batch.append((name, data, None))
        count += 1
        if len(batch) >= min(batch_size, BATCH_LIMIT):
            changelog.publish(batch)
            batch = []
    if batch:
        changelog.publish(batch)
    return count


def backup(changelog: Changelog, pattern: str, out: Path) -> int:
    count = 0
    with open(out, "xb") as fh:
        fh.write(MAGIC)
        for name, data in read(changelog, pattern):
            raw = name.encode()
            fh.write(_LEN.pack(len(raw)) + raw + _LEN.pack(len(data)) + data)
            fh.write(_LEN.pack(zlib.crc32(data, zlib.crc32(raw))))
            count += 1
    return count


def restore(changelog: Changelog, path: Path) -> int:
    """Publish a backup's changes, once the whole file has been read and found whole."""
    for _ in restored(path):
        pass
    return publish_all(changelog, restored(path))


def restored(path: Path) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise BadBackup(f"{path} is not a changelog backup (landmark-changelog 1)")
        while head := fh.read(4):
            raw = fh.read(_LEN.unpack(head)[0])
            data = fh.read(_LEN.unpack(fh.read(4))[0])
            crc = fh.read(4)
            if len(crc) != 4 or _LEN.unpack(crc)[0] != zlib.crc32(data, zlib.crc32(raw)):
                raise BadBackup(f"{path} is damaged after {fh.tell()} bytes")
            yield raw.decode(), data


def resharded(changes: Iterator[tuple[str, bytes]], shards: int) -> Iterator[tuple[str, bytes]]:
    """The same changes, under the subjects of a layout of ``shards`` shards."""
    for name, data in changes:
        image = image_of(name)
        yield subject(shard_of(image, shards), shards, image), data
