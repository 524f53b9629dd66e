"""The index directory: sealed segments + a write-ahead-logged growing buffer.

    INDEX_DIR/LOCK            held (flock) by the one process that owns the directory
    INDEX_DIR/MANIFEST        JSON naming the live segments, WAL files and removed ids
                              (manifest.py)
    INDEX_DIR/seg-NNNNNN/     sealed segments (segment.py)
    INDEX_DIR/wal-NNNNNN.log  changes not yet sealed into a segment (wal.py frames the
                              records of records.py)

An add is acknowledged once its WAL record is fsynced; it is searchable at once (the
growing buffer is searched exactly). A background thread seals the buffer into segments and
merges segments (compaction.py). Removes are tombstones until a merge drops their rows. Anything in
the directory that the manifest does not name (a half-written segment, an old log) is
deleted at start-up, never loaded.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from landmark.wire import Features

from . import manifest, records
from .compaction import Compaction
from .errors import DiskFull, IndexLocked, StorageFailure
from .segment import PROJECTION_DIM, ImageData, Segment, load_segment
from .view import View, build_view
from .wal import LogScan, WalWriter, scan

log = logging.getLogger(__name__)

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class StoreSettings:
    n_trees: int = 8  # over 16-D projections (docs/index-design.md has the measurements)
    projection_dim: int = PROJECTION_DIM  # Annoy's dimension: a PCA projection (compact.py)
    seal_descriptors: int = 20_000  # seal the growing buffer at this size ...
    seal_seconds: float = 2.0  # ... or when its oldest image waits this long
    max_segments: int = 8  # merge segments when there are more ...
    # ... but never build one of more rows than this: a build holds Annoy's nodes for its
    # rows in memory (about 190 bytes each), so this bounds a merge's memory
    max_segment_rows: int = 10_000_000
    max_dead_fraction: float = 0.3  # ... or when removed rows are this share of all rows
    # ... or when no write came for this long and there is something to compact
    # (more than one segment, or removed rows); 0 = never compact when idle
    idle_merge_seconds: float = 5.0


class IndexStore(Compaction):
    def __init__(
        self, index_dir: Path, settings: StoreSettings | None = None, background: bool = True
    ) -> None:
        self.dir = Path(index_dir)
        self.settings = settings or StoreSettings()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.dir / "LOCK", "a")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise IndexLocked(
                f"{self.dir} is in use by another search process; one process owns an index "
                "directory (run replicas on copies of it)"
            ) from None
        self._mutex = threading.RLock()  # guards every field below
        self._maintenance = threading.Lock()  # one seal or merge at a time
        found = manifest.read(self.dir)
        self.backend: str = found.backend
        self.dimension: int = found.dimension
        self.generation: int = found.generation
        self._next = found.next
        self.segments = [load_segment(self.dir / n) for n in found.segments]
        # tombstones: (segment name, image id) of removed images whose rows remain
        self.removed: set[tuple[str, str]] = set(found.removed)
        self.wals = [self.dir / n for n in found.wals]
        self.growing: dict[str, ImageData] = {}
        self._growing_since = 0.0
        self._last_write = time.monotonic()
        self._ids_cache: dict[str, set[str]] = {}
        self.disk_full = False
        manifest.remove_unlisted(self.dir, found)
        last = self._replay()
        if found.format != manifest.FORMAT and self.dir.joinpath(manifest.NAME).exists():
            # before any record of the new format is written, so that older code refuses
            # the directory by its format number rather than by a record it cannot read
            self._write_manifest()
            log.info("%s: index format %d -> %d", self.dir, found.format, manifest.FORMAT)
        self._writer = WalWriter(self.wals[-1], last) if self.wals else self._start_wal()
        self.view = self._make_view()
        self._stop = threading.Event()
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._background, name="sealer", daemon=True)
            self._thread.start()

    # -- manifest ----------------------------------------------------------------------

    def _write_manifest(self) -> None:
        self.generation += 1
        manifest.write(
            self.dir,
            manifest.Manifest(
                backend=self.backend,
                dimension=self.dimension,
                generation=self.generation,
                next=self._next,
                segments=tuple(s.name for s in self.segments),
                wals=tuple(p.name for p in self.wals),
                removed=frozenset(self.removed),
            ),
        )

    def _new_name(self, prefix: str) -> str:
        name = f"{prefix}-{self._next:06d}"
        self._next += 1
        return name

    def _start_wal(self) -> WalWriter:
        """A new log file, named in the manifest before anything is written to it."""
        path = self.dir / (self._new_name("wal") + ".log")
        writer = WalWriter(path)
        self.wals.append(path)
        try:
            self._write_manifest()
        except BaseException:
            self.wals.remove(path)
            writer.close()
            path.unlink(missing_ok=True)
            raise
        return writer

    def free_bytes(self) -> int:
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def _storage_error(self, exc: OSError, what: str) -> Exception:
        """The domain error for a failed write: DiskFull on ENOSPC, StorageFailure else."""
        if exc.errno in NO_SPACE:
            self._set_disk_full(True)
            return DiskFull(
                f"index disk full: {self.free_bytes()} bytes free in {self.dir}; {what} was "
                "not written. Free space or grow the volume: writes resume by themselves"
            )
        return StorageFailure(f"the index disk failed to write ({exc}); {what} was not written")

    def _set_disk_full(self, full: bool) -> None:
        if full != self.disk_full:
            self.disk_full = full
            if full:
                log.error("index disk full (%d bytes free): writes refused", self.free_bytes())
            else:
                log.warning(
                    "index disk has room again (%d bytes free): writes resume", self.free_bytes()
                )

    # -- the log ----------------------------------------------------------------------

    def _replay(self) -> LogScan | None:
        """Apply every logged change; returns the last log's scan (the writer reuses it)."""
        found = None
        for path in self.wals:
            found = scan(path)
            for payload in found.records:
                self._apply_record(payload)
        return found

    def _apply_record(self, payload: bytes) -> None:
        change = records.decode(payload)
        if isinstance(change, records.Removed):
            self._apply_remove(change.image_ids)
        else:
            self._apply_add(change.image_id, change.label, change.metadata, change.features)

    # -- changes ----------------------------------------------------------------------

    def contains(self, image_id: str) -> bool:
        return image_id in self.view.by_id

    def apply(self, removes: list[str], adds: list[tuple[str, str, dict, Features]]) -> None:
        """Durably remove then add; returns once the change is fsynced and searchable.

        A large batch becomes a sealed segment directly (durable when the manifest names
        it); a small one goes through the write-ahead log into the growing buffer."""
        size = sum(len(f) for *_, f in adds)
        if size >= self.settings.seal_descriptors and not any(r in self.growing for r in removes):
            return self._bulk(removes, adds)
        with self._mutex:
            if adds and not self.backend:
                self.backend, self.dimension = adds[0][3].backend, adds[0][3].dimension
            log_records = [records.remove_record(removes)] if removes else []
            log_records += [records.image_record(*a) for a in adds]
            if not log_records:
                return
            try:
                if self._writer.broken:  # a failed append could not be rolled back
                    fresh = self._start_wal()
                    self._writer.close()
                    self._writer = fresh
                self._writer.append(log_records)
            except OSError as exc:
                raise self._storage_error(exc, "the change") from exc
            self._set_disk_full(False)
            if removes:
                self._apply_remove(removes)
            for a in adds:
                self._apply_add(*a)
            self.view = self._make_view()
            self._last_write = time.monotonic()

    def _saved(self) -> tuple[list[Segment], set[tuple[str, str]], list[Path]]:
        return list(self.segments), set(self.removed), list(self.wals)

    def _commit(self, saved: tuple, new: list[Segment], what: str) -> None:
        """Write the manifest for a change already made in memory. If that fails, the
        fields ``saved`` by ``_saved`` are restored and the new segments deleted."""
        try:
            self._write_manifest()
        except OSError as exc:
            self.segments, self.removed, self.wals = saved
            for segment in new:
                shutil.rmtree(segment.path, ignore_errors=True)
            raise self._storage_error(exc, what) from exc

    def _apply_add(self, image_id: str, label: str, metadata: dict, f: Features) -> None:
        if not self.backend:
            self.backend, self.dimension = f.backend, f.dimension
        if not self.growing:
            self._growing_since = time.monotonic()
        self.growing[image_id] = ImageData(
            image_id,
            label,
            f.descriptors,
            f.locations,
            f.image_size[0],
            f.image_size[1],
            dict(metadata),
        )

    def _apply_remove(self, ids: list[str]) -> None:
        for image_id in ids:
            self.growing.pop(image_id, None)
            for seg in self.segments:
                if image_id in self._ids(seg):
                    self.removed.add((seg.name, image_id))

    def _ids(self, seg: Segment) -> set[str]:
        ids = self._ids_cache.get(seg.name)
        if ids is None:
            ids = self._ids_cache[seg.name] = {m.image_id for m in seg.images}
        return ids

    # -- the view searches read -------------------------------------------------------

    def _make_view(self) -> View:
        return build_view(
            self.segments,
            self.removed,
            self.growing,
            self.backend,
            self.dimension,
            self.generation,
        )

    # -- info and shutdown --------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        """Bytes of the files in the index directory. A merge may delete a segment while
        this walks: files that vanish under it are not counted."""
        total = 0
        for root, _, files in os.walk(self.dir):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    pass
        return total

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._mutex:
            self._writer.close()
        self._lock_fh.close()
