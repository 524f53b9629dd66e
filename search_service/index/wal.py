"""Write-ahead log: every acknowledged change is on disk before the caller hears "done".

A log file is a sequence of records, each ``length (4 bytes, little-endian) | crc32 (4) |
payload``. The writer appends a batch with plain ``write`` calls and ``fsync``; when any
of that fails (ENOSPC, EIO, a short write) it truncates the file back to the end of the
last acknowledged record and fsyncs again before the error reaches the caller, so a later
append never lands behind a torn record. If even that rollback fails the writer refuses
every further append (``WalBroken``): the store then starts a new log file.

Replay reads every intact record. Bytes that do not form a record are either a torn tail
(nothing intact follows: a write cut short by a crash, never acknowledged; the writer
truncates it) or damage in the middle (intact records follow: those are kept, and the
damaged span is reported, never silently dropped with what comes after it).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .records import KINDS

log = logging.getLogger(__name__)

HEADER = struct.Struct("<II")
MAX_RECORD = 1 << 30
RECORD_KINDS = KINDS  # the first payload byte of every record the store writes


class WalBroken(OSError):
    """A failed append could not be rolled back; this log file takes no more records."""


@dataclass
class LogScan:
    """What one log file holds: its intact records, where the last one ends, and the byte
    spans (start, end) that are not records, torn tail included."""

    records: list[bytes] = field(default_factory=list)
    end: int = 0
    damaged: list[tuple[int, int]] = field(default_factory=list)
    size: int = 0

    @property
    def torn_tail(self) -> int:
        return self.size - self.end


def _record_at(data: bytes, pos: int) -> int:
    """The end of an intact record starting at ``pos``, or -1."""
    if pos + HEADER.size > len(data):
        return -1
    length, crc = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    if length == 0 or length > MAX_RECORD or end > len(data):
        return -1
    if data[pos + HEADER.size] not in RECORD_KINDS:
        return -1
    if zlib.crc32(memoryview(data)[pos + HEADER.size : end]) != crc:
        return -1
    return end


def scan(path: Path) -> LogScan:
    """Every intact record of ``path``; a damaged span is skipped by searching for the next
    intact record after it."""
    out = LogScan()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    out.size = len(data)
    pos = 0
    while pos < len(data):
        end = _record_at(data, pos)
        if end >= 0:
            out.records.append(data[pos + HEADER.size : end])
            pos = out.end = end
            continue
        nxt = next((q for q in range(pos + 1, len(data)) if _record_at(data, q) >= 0), -1)
        if nxt < 0:
            break  # nothing intact follows: a torn tail
        out.damaged.append((pos, nxt))
        log.error(
            "%s: bytes %d-%d are not a valid record but intact records follow them; "
            "skipping the damaged span and keeping the records after it",
            path,
            pos,
            nxt,
        )
        pos = nxt
    return out


class WalWriter:
    """Appends records durably (write + fsync) to one log file."""

    def __init__(self, path: Path, found: LogScan | None = None) -> None:
        """Open ``path`` for appending; ``found`` is its scan when the caller already has one."""
        self.path = path
        found = scan(path) if found is None else found
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.broken = False
        try:
            if found.torn_tail:
                log.warning(
                    "%s: dropping a torn tail of %d bytes (a write cut short, never acknowledged)",
                    path,
                    found.torn_tail,
                )
                os.ftruncate(self._fd, found.end)
            os.fsync(self._fd)
            fsync_dir(path.parent)
        except BaseException:
            os.close(self._fd)
            raise
        self._end = found.end

    def append(self, payloads: list[bytes]) -> None:
        """Write and fsync ``payloads`` as records; on failure the log is as before."""
        if self.broken:
            raise WalBroken(f"{self.path} takes no more records after a failed rollback")
        buf = memoryview(b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads))
        try:
            written = 0
            while written < len(buf):  # os.write may write less than asked
                written += os.pwrite(self._fd, buf[written:], self._end + written)
            os.fsync(self._fd)
        except OSError:
            self._rollback()
            raise
        self._end += len(buf)

    def _rollback(self) -> None:
        try:
            os.ftruncate(self._fd, self._end)
            os.fsync(self._fd)
        except OSError as exc:
            self.broken = True
            log.error("%s: cannot roll back a failed append (%s); closing this log", self.path, exc)

    def size(self) -> int:
        return self._end

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def fsync_dir(path: Path) -> None:
    _fsync(path)


def _fsync(path: Path) -> None:
    """fsync a file or a folder by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_dir(tmp: Path, final: Path) -> None:
    """Make the folder ``tmp`` durable under the name ``final``: its files, its folders and
    itself fsynced, renamed, and the parent fsynced (a crash leaves either nothing or all of
    it)."""
    for p in sorted(tmp.rglob("*"), reverse=True):  # a folder's files before the folder
        _fsync(p)
    _fsync(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
