"""The index directory: sealed segments + a write-ahead-logged growing buffer.

    INDEX_DIR/LOCK            held (flock) by the one process that owns the directory
    INDEX_DIR/MANIFEST        JSON naming the live segments, WAL files and removed ids;
                              replaced atomically (write, fsync, rename, fsync dir)
    INDEX_DIR/seg-NNNNNN/     sealed segments (segment.py)
    INDEX_DIR/wal-NNNNNN.log  changes not yet sealed into a segment

An add is acknowledged once its WAL record is fsynced; it is searchable at once (the
growing buffer is searched exactly). A background sealer turns the buffer into a segment
once it is large or old enough, and merges segments when there are many or when removed
images take much space. Removes are tombstones until a merge drops their rows. Anything in
the directory that the manifest does not name (a half-written segment, an old log) is
deleted at start-up, never loaded.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark.v1 import search_pb2
from landmark.wire import Features, features_from_proto, features_to_proto

from .errors import DiskFull, IndexCorrupt, IndexLocked, StorageFailure
from .segment import (
    ImageData,
    ImageMeta,
    Segment,
    Stopped,
    build_segment,
    bytes_needed,
    load_segment,
)
from .wal import LogScan, WalWriter, fsync_dir, scan

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
POLL_SECONDS = 0.25  # how often the background thread looks for work
MAX_BACKOFF = 30.0  # longest pause between retries of a failed seal or merge


@dataclass(frozen=True)
class StoreSettings:
    n_trees: int = 16
    seal_descriptors: int = 20_000  # seal the growing buffer at this size ...
    seal_seconds: float = 2.0  # ... or when its oldest image waits this long
    max_segments: int = 8  # merge all segments when there are more
    max_dead_fraction: float = 0.3  # ... or when removed rows are this share of all rows
    # ... or when no write came for this long and there is something to compact
    # (more than one segment, or removed rows); 0 = never compact when idle
    idle_merge_seconds: float = 5.0


@dataclass(frozen=True)
class View:
    """What one search reads: immutable, swapped whole on every change.

    Global image numbers run over the sealed segments in order, then the growing buffer;
    global rows likewise. ``dead`` holds the global numbers of removed images."""

    backend: str
    dimension: int
    segments: tuple[Segment, ...]
    image_offsets: tuple[int, ...]  # first global image number of each segment
    row_offsets: tuple[int, ...]  # first global row of each segment (+ growing at the end)
    images: tuple[ImageMeta, ...]
    growing_descriptors: np.ndarray  # [G, D]
    growing_locations: np.ndarray  # [G, 2]
    growing_row_image: np.ndarray  # [G] global image numbers
    dead: np.ndarray  # global image numbers
    generation: int
    by_id: dict[str, int] = field(default_factory=dict)
    growing_first: int = 0  # global number of the first growing-buffer image

    @property
    def live_images(self) -> int:
        return len(self.by_id)

    def features_of(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors [N, D] and (x, y) locations [N, 2] of global image number ``image``."""
        meta = self.images[image]
        if image >= self.growing_first:
            source_d, source_l = self.growing_descriptors, self.growing_locations
        else:
            seg = self.segments[bisect.bisect_right(self.image_offsets, image) - 1]
            source_d, source_l = seg.descriptors, seg.locations
        rows = slice(meta.start, meta.start + meta.count)
        return np.asarray(source_d[rows]), np.asarray(source_l[rows])


class IndexStore:
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
        manifest = self._read_manifest()
        self.backend: str = manifest["backend"]
        self.dimension: int = manifest["dimension"]
        self.generation: int = manifest["generation"]
        self._next = manifest["next"]
        self.segments = [load_segment(self.dir / n) for n in manifest["segments"]]
        # tombstones: (segment name, image id) of removed images whose rows remain
        self.removed: set[tuple[str, str]] = {tuple(r) for r in manifest["removed"]}
        self.wals = [self.dir / n for n in manifest["wals"]]
        self.growing: dict[str, ImageData] = {}
        self._growing_since = 0.0
        self._last_write = time.monotonic()
        self._ids_cache: dict[str, set[str]] = {}
        self.disk_full = False
        self._remove_unlisted(manifest)
        last = self._replay()
        self._writer = WalWriter(self.wals[-1], last) if self.wals else self._start_wal()
        self.view = self._make_view()
        self._stop = threading.Event()
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._background, name="sealer", daemon=True)
            self._thread.start()

    # -- manifest ----------------------------------------------------------------------

    def _read_manifest(self) -> dict:
        path = self.dir / MANIFEST
        if not path.exists():
            return {
                "format": 2,
                "backend": "",
                "dimension": 0,
                "generation": 0,
                "next": 1,
                "segments": [],
                "wals": [],
                "removed": [],
            }
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise IndexCorrupt(f"{path} is not valid JSON ({exc})") from None
        if manifest.get("format") != 2:
            raise IndexCorrupt(f"{path}: unknown index format {manifest.get('format')}")
        return manifest

    def _write_manifest(self) -> None:
        self.generation += 1
        manifest = {
            "format": 2,
            "backend": self.backend,
            "dimension": self.dimension,
            "generation": self.generation,
            "next": self._next,
            "segments": [s.name for s in self.segments],
            "wals": [p.name for p in self.wals],
            "removed": sorted(map(list, self.removed)),
        }
        tmp = self.dir / f".{MANIFEST}.tmp"
        with open(tmp, "w") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / MANIFEST)
        fsync_dir(self.dir)

    def _remove_unlisted(self, manifest: dict) -> None:
        keep = set(manifest["segments"]) | set(manifest["wals"]) | {MANIFEST, "LOCK"}
        for p in self.dir.iterdir():
            if p.name not in keep and (p.name.startswith(("seg-", "wal-", ".tmp", "."))):
                log.info("removing %s (not in the manifest: left by an interrupted change)", p)
                shutil.rmtree(p) if p.is_dir() else p.unlink()

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
        kind, body = payload[:1], payload[1:]
        if kind == b"A":
            entry = search_pb2.ImageEntry.FromString(body)
            f = features_from_proto(entry.features)
            self._apply_add(entry.image_id, entry.label, dict(entry.metadata), f)
        elif kind == b"R":
            self._apply_remove(json.loads(body))
        else:
            raise IndexCorrupt(f"unknown WAL record type {kind!r}")

    @staticmethod
    def add_record(image_id: str, label: str, metadata: dict[str, str], f: Features) -> bytes:
        entry = search_pb2.ImageEntry(
            image_id=image_id, label=label, metadata=metadata, features=features_to_proto(f)
        )
        return b"A" + entry.SerializeToString()

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
            records = []
            if removes:
                records.append(b"R" + json.dumps(removes).encode())
            records += [self.add_record(*a) for a in adds]
            if not records:
                return
            try:
                if self._writer.broken:  # a failed append could not be rolled back
                    fresh = self._start_wal()
                    self._writer.close()
                    self._writer = fresh
                self._writer.append(records)
            except OSError as exc:
                raise self._storage_error(exc, "the change") from exc
            self._set_disk_full(False)
            if removes:
                self._apply_remove(removes)
            for a in adds:
                self._apply_add(*a)
            self.view = self._make_view()
            self._last_write = time.monotonic()

    def _bulk(self, removes: list[str], adds: list[tuple[str, str, dict, Features]]) -> None:
        with self._maintenance:
            with self._mutex:
                if not self.backend:
                    self.backend, self.dimension = adds[0][3].backend, adds[0][3].dimension
                name = self._new_name("seg")
            images = [
                ImageData(
                    i,
                    label,
                    f.descriptors,
                    f.locations,
                    f.image_size[0],
                    f.image_size[1],
                    dict(meta),
                )
                for i, label, meta, f in adds
            ]
            segment = self._build(images, name, "the change")
            with self._mutex:
                saved = self._saved()
                self._apply_remove(removes)  # tombstones go into the same manifest write
                self.segments.append(segment)
                self._commit(saved, segment, "the change")
                self.view = self._make_view()
                self._last_write = time.monotonic()

    def _build(self, images: list[ImageData], name: str, what: str) -> Segment:
        """Write a segment, refusing up front when the disk cannot hold it; on failure
        nothing of it is left behind."""
        tmp = self.dir / f".tmp-{name}"
        need = bytes_needed(images, self.dimension, self.settings.n_trees)
        if self.free_bytes() < need:
            self._set_disk_full(True)
            raise DiskFull(
                f"index disk full: {self.free_bytes()} bytes free in {self.dir}, about {need} "
                f"needed; {what} was not written. Free space or grow the volume"
            )
        try:
            return build_segment(
                images,
                self.dimension,
                self.settings.n_trees,
                tmp,
                self.dir / name,
                self._stop.is_set,
            )
        except Stopped:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._storage_error(exc, what) from exc

    def _saved(self) -> tuple[list[Segment], set[tuple[str, str]], list[Path]]:
        return list(self.segments), set(self.removed), list(self.wals)

    def _commit(self, saved: tuple, new: Segment | None, what: str) -> None:
        """Write the manifest for a change already made in memory. If that fails, the
        fields ``saved`` by ``_saved`` are restored and the new segment deleted."""
        try:
            self._write_manifest()
        except OSError as exc:
            self.segments, self.removed, self.wals = saved
            if new is not None:
                shutil.rmtree(new.path, ignore_errors=True)
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
        images: list[ImageMeta] = []
        image_offsets, row_offsets, rows = [], [], 0
        dead = []
        by_id: dict[str, int] = {}
        for seg in self.segments:
            image_offsets.append(len(images))
            row_offsets.append(rows)
            for m in seg.images:
                if (seg.name, m.image_id) in self.removed:
                    dead.append(len(images))
                else:
                    by_id[m.image_id] = len(images)
                images.append(m)
            rows += seg.rows
        row_offsets.append(rows)
        growing_first = len(images)
        g_desc, g_loc, g_img, start = [], [], [], 0
        for im in self.growing.values():
            by_id[im.image_id] = len(images)
            g_img.append(np.full(len(im.descriptors), len(images), np.int32))
            images.append(
                ImageMeta(
                    im.image_id,
                    im.label,
                    start,
                    len(im.descriptors),
                    im.width,
                    im.height,
                    im.metadata,
                )
            )
            g_desc.append(im.descriptors)
            g_loc.append(im.locations)
            start += len(im.descriptors)
        dim = self.dimension
        return View(
            backend=self.backend if by_id else "",
            dimension=dim if by_id else 0,
            segments=tuple(self.segments),
            image_offsets=tuple(image_offsets),
            row_offsets=tuple(row_offsets),
            images=tuple(images),
            growing_descriptors=np.concatenate(g_desc) if g_desc else np.zeros((0, dim), "f4"),
            growing_locations=np.concatenate(g_loc) if g_loc else np.zeros((0, 2), "f4"),
            growing_row_image=np.concatenate(g_img) if g_img else np.zeros(0, np.int32),
            dead=np.array(dead, np.int32),
            generation=self.generation,
            by_id=by_id,
            growing_first=growing_first,
        )

    # -- sealing and merging ----------------------------------------------------------

    def seal(self) -> bool:
        """Turn the growing buffer into a sealed segment. True when one was written."""
        with self._maintenance:
            with self._mutex:
                if not self.growing:
                    return False
                images = list(self.growing.values())
                # New changes go to a fresh log from here on (an empty one left by a failed
                # seal is kept); the old logs stay listed until the segment that holds
                # their adds is in the manifest.
                if self._writer.size() > 0 or self._writer.broken:
                    try:
                        fresh = self._start_wal()
                    except OSError as exc:
                        raise self._storage_error(exc, "the sealed segment") from exc
                    self._writer.close()
                    self._writer = fresh
                sealed_wals = [p for p in self.wals if p != self._writer.path]
                name = self._new_name("seg")
            segment = self._build(images, name, "the sealed segment")
            with self._mutex:
                saved = self._saved()
                self.segments.append(segment)
                served = []
                for im in images:
                    if self.growing.get(im.image_id) is im:
                        served.append(im.image_id)  # from now on served by the segment
                    else:  # removed or replaced while sealing: its sealed copy is dead
                        self.removed.add((name, im.image_id))
                self.wals = [p for p in self.wals if p not in sealed_wals]
                self._commit(saved, segment, "the sealed segment")
                for image_id in served:
                    del self.growing[image_id]
                for p in sealed_wals:
                    p.unlink(missing_ok=True)
                if self.growing:
                    self._growing_since = time.monotonic()
                self.view = self._make_view()
            log.info("sealed %d images into %s", len(images), name)
            return True

    def merge(self) -> bool:
        """Rewrite all sealed segments as one, dropping removed images' rows."""
        with self._maintenance:
            with self._mutex:
                old = list(self.segments)
                if len(old) < 2 and not self.removed:
                    return False
                removed = set(self.removed)
                name = self._new_name("seg")
            keep = [
                s.image_data(i)
                for s in old
                for i, m in enumerate(s.images)
                if (s.name, m.image_id) not in removed
            ]
            merged = self._build(keep, name, "the merged segment") if keep else None
            with self._mutex:
                saved = self._saved()
                gone = {s.name for s in old}
                # images removed while merging: tombstone their copy in the merged segment
                late = {i for seg, i in self.removed - removed if seg in gone}
                self.segments = ([merged] if merged else []) + self.segments[len(old) :]
                self.removed = {(seg, i) for seg, i in self.removed if seg not in gone}
                self.removed |= {(name, i) for i in late}
                self._commit(saved, merged, "the merged segment")
                for seg_name in gone:
                    self._ids_cache.pop(seg_name, None)
                self.view = self._make_view()
            for s in old:
                shutil.rmtree(s.path, ignore_errors=True)  # open mmaps stay valid on POSIX
            log.info("merged %d segments into %s (%d images)", len(old), name, len(keep))
            return True

    def needs_merge(self) -> bool:
        with self._mutex:
            if len(self.segments) > self.settings.max_segments:
                return True
            if not self.removed:  # the common case, checked four times a second
                return False
            rows = sum(s.rows for s in self.segments)
            dead_rows = sum(
                m.count
                for s in self.segments
                for m in s.images
                if (s.name, m.image_id) in self.removed
            )
            return rows > 0 and dead_rows / rows > self.settings.max_dead_fraction

    def _idle_compaction_due(self) -> bool:
        idle = self.settings.idle_merge_seconds
        with self._mutex:
            return (
                idle > 0
                and not self.growing
                and (len(self.segments) > 1 or bool(self.removed))
                and time.monotonic() - self._last_write >= idle
            )

    def _background(self) -> None:
        """Seal and merge when due. A failure (a full disk, say) is logged once and
        retried with a growing pause, up to MAX_BACKOFF; the first success resets it."""
        pause = POLL_SECONDS
        while not self._stop.wait(pause):
            try:
                with self._mutex:
                    size = sum(len(i.descriptors) for i in self.growing.values())
                    due = self.growing and (
                        size >= self.settings.seal_descriptors
                        or time.monotonic() - self._growing_since >= self.settings.seal_seconds
                    )
                if due:
                    self.seal()
                if self.needs_merge() or self._idle_compaction_due():
                    self.merge()
            except Stopped:
                return  # shutting down: the WAL still holds everything
            except (DiskFull, StorageFailure) as exc:
                if pause == POLL_SECONDS:
                    log.warning("sealing/merging paused: %s; retrying", exc)
                pause = min(pause * 2, MAX_BACKOFF)
                continue
            except Exception:  # keep serving; the next round retries
                if pause == POLL_SECONDS:
                    log.exception("background seal/merge failed; retrying")
                pause = min(pause * 2, MAX_BACKOFF)
                continue
            if pause != POLL_SECONDS:
                log.info("sealing/merging resumed")
                self._set_disk_full(False)
            pause = POLL_SECONDS

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
