"""The live write-ahead logs of an index, oldest first; changes are appended to the last.

A new log is named in the manifest before anything is written to it (``name_in_manifest``,
the store's manifest write); a log is deleted only after the manifest stops naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from .wal import LogScan, WalWriter, scan


class LogFiles:
    def __init__(
        self,
        directory: Path,
        names: tuple[str, ...],
        new_name: Callable[[], str],
        name_in_manifest: Callable[[], None],
    ) -> None:
        self.dir = directory
        self.paths = [directory / n for n in names]
        self._new_name = new_name
        self._name_in_manifest = name_in_manifest
        self._last: LogScan | None = None
        self._writer: WalWriter | None = None

    def replay(self) -> Iterator[bytes]:
        """Every intact record of every log, in order."""
        for path in self.paths:
            self._last = scan(path)
            yield from self._last.records

    def open(self) -> None:
        """Append to the last log from here on (a new one when there is none)."""
        if self.paths:
            self._writer = WalWriter(self.paths[-1], self._last)
        else:
            self._writer = self._start()

    def _start(self) -> WalWriter:
        path = self.dir / (self._new_name() + ".log")
        writer = WalWriter(path)
        self.paths.append(path)
        try:
            self._name_in_manifest()
        except BaseException:
            self.paths.remove(path)
            writer.close()
            path.unlink(missing_ok=True)
            raise
        return writer

    def _switch(self) -> None:
        fresh = self._start()
        assert self._writer is not None
        self._writer.close()
        self._writer = fresh

    def append(self, payloads: list[bytes]) -> None:
        """Append and fsync; OSError when the disk refuses (nothing is appended then)."""
        assert self._writer is not None
        if self._writer.broken:  # a failed append could not be rolled back
            self._switch()
        self._writer.append(payloads)

    def rotate(self) -> list[Path]:
        """Send new changes to a fresh log (an empty one left by a failed seal is kept);
        returns the older logs, which hold every change logged so far."""
        assert self._writer is not None
        if self._writer.size() > 0 or self._writer.broken:
            self._switch()
        return [p for p in self.paths if p != self._writer.path]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
