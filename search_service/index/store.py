"""The index directory and the state every search reads: sealed segments with their
tombstones, the write-ahead log and the growing buffer (files: docs/index-design.md).

A write goes log → buffer → seal → merge: ``apply`` appends a small change to the log and
fsyncs it, then puts it in the growing buffer (bounded: BufferFull past
``max_growing_descriptors``); the sealer (sealing.py) and the merger (merging.py) build
segments in their own threads, and a bulk add (writing.py) in its caller's. No build holds
the state lock: each takes what it needs under it, builds, and commits under it again by
one manifest write, after which the files it replaced are deleted. The store knows none
of them: wiring.py builds them and hands each the store's methods it uses.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from landmark.wire import Features

from ..errors import BufferFull
from . import manifest, records
from .buffer import BufferToSeal, GrowingBuffer, image_data
from .disk import IndexDisk
from .logfiles import LogFiles
from .segment import Segment, load_segment
from .segment_writer import StoredImages
from .store_settings import StoreSettings
from .view import Sealed, View, build_view, sealed_part
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 0.5  # what BufferFull asks a caller to wait


class IndexStore:
    def __init__(self, index_dir: Path, settings: StoreSettings, disk: IndexDisk) -> None:
        self.dir = Path(index_dir)
        self.settings = settings
        self.disk = disk
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = manifest.lock(self.dir)
        # The state lock guards every field below; it is held for in-memory changes, log
        # appends and manifest writes, never for a segment build.
        self._state = threading.RLock()
        found = manifest.read(self.dir)
        self.backend: str = found.backend
        self.dimension: int = found.dimension
        self.generation: int = found.generation
        self._next = found.next
        self.segments = [load_segment(self.dir / n) for n in found.segments]
        # tombstones: (segment name, image id) of removed images whose rows remain
        self.removed: set[tuple[str, str]] = set(found.removed)
        self.logs = LogFiles(
            self.dir, found.wals, lambda: self.new_name("wal"), self._write_manifest
        )
        self.growing = GrowingBuffer()
        stored = lambda: StoredImages.live(*self.snapshot())  # noqa: E731
        self.vocabulary = Vocabulary(
            self.dir, found.codebook, found.previous_codebook, settings, self.new_name, stored,
            disk.stop.is_set,
        )  # fmt: skip
        self.last_write = time.monotonic()
        self._sealed: Sealed | None = None  # the view's sealed part, until it changes
        manifest.remove_unlisted(self.dir, found)
        self._replay()
        if found.format != manifest.FORMAT and self.dir.joinpath(manifest.NAME).exists():
            # before any record of the new format is written, so that older code refuses
            # the directory by its format number rather than by a record it cannot read
            self._write_manifest()
            log.info("%s: index format %d -> %d", self.dir, found.format, manifest.FORMAT)
        self.logs.open()
        self.view = self._make_view()

    def _write_manifest(self) -> None:
        self.generation += 1
        words = self.vocabulary.for_manifest(self.segments)
        manifest.write(
            self.dir,
            manifest.Manifest(
                backend=self.backend,
                dimension=self.dimension,
                generation=self.generation,
                next=self._next,
                segments=tuple(s.name for s in self.segments),
                wals=tuple(p.name for p in self.logs.paths),
                removed=frozenset(self.removed),
                codebook=words.name,
                previous_codebook=words.previous_name,
            ),
        )
        self.vocabulary.named(words)

    def new_name(self, prefix: str) -> str:
        with self._state:
            name = f"{prefix}-{self._next:06d}"
            self._next += 1
            return name

    @contextmanager
    def _changing(self, new: list[Segment], what: str) -> Iterator[None]:
        """Change segments / removed / wals in memory inside the block, then write the
        manifest; if either fails, the state is as it was and ``new`` segments' files are
        deleted."""
        saved = list(self.segments), set(self.removed), list(self.logs.paths)
        try:
            yield
            self._write_manifest()
        except BaseException as exc:
            self.segments, self.removed, self.logs.paths = saved
            self._sealed = None
            for segment in new:
                shutil.rmtree(segment.path, ignore_errors=True)
            if isinstance(exc, OSError):
                raise self.disk.storage_error(exc, what) from exc
            raise
        self._sealed = None

    def _refresh(self, write: bool = False) -> None:
        """A new view for searches, after a change (``write``: a caller's)."""
        self.view = self._make_view()
        if write:
            self.last_write = time.monotonic()

    def _replay(self) -> None:
        """Apply every logged change."""
        for payload in self.logs.replay():
            change = records.decode(payload)
            if isinstance(change, records.Removed):
                self._apply_remove(change.image_ids)
            else:
                f = change.features
                self._set_kind(f.backend, f.dimension)
                self.growing.put(image_data(change.image_id, change.label, change.metadata, f))

    def contains(self, image_id: str) -> bool:
        return image_id in self.view.by_id

    def in_buffer(self, image_id: str) -> bool:
        return image_id in self.growing

    def apply(self, removes: list[str], adds: list[tuple[str, str, dict, Features]]) -> None:
        """Durably remove then add through the log; returns once the change is fsynced
        and searchable. BufferFull when the adds would pass the buffer's bound."""
        new = sum(len(f) for *_, f in adds)
        with self._state:
            limit = self.settings.max_growing_descriptors
            if adds and self.growing and self.growing.descriptors + new > limit:
                raise BufferFull(
                    f"the growing buffer holds {self.growing.descriptors} descriptors (limit "
                    f"{limit}) while sealing catches up; retry in {RETRY_AFTER_SECONDS}s",
                    RETRY_AFTER_SECONDS,
                )
            log_records = [records.remove_record(removes)] if removes else []
            log_records += [records.image_record(*a) for a in adds]
            if not log_records:
                return
            try:
                self.logs.append(log_records)
            except OSError as exc:
                raise self.disk.storage_error(exc, "the change") from exc
            self.disk.set_disk_full(False)
            if removes:
                self._apply_remove(removes)
            for image_id, label, meta, f in adds:
                self._set_kind(f.backend, f.dimension)
                self.growing.put(image_data(image_id, label, meta, f))
            self._refresh(write=True)

    def _set_kind(self, backend: str, dimension: int) -> None:
        if not self.backend:
            self.backend, self.dimension = backend, dimension

    def _apply_remove(self, ids: list[str]) -> None:
        for image_id in ids:
            self.growing.drop(image_id)
            for seg in self.segments:
                if image_id in seg.ids:
                    self.removed.add((seg.name, image_id))
                    self._sealed = None

    def add_segments(
        self,
        built: list[Segment],
        kind: tuple[str, int],
        removes: list[str],
        dead: set[str],
        what: str,
    ) -> None:
        """Name ``built`` segments (a bulk add) in the manifest, with tombstones for the
        ``removes`` (images it replaces: never in the buffer) and for the images of
        ``built`` that must not be served (``dead``: found present since they were built)."""
        with self._state:
            self._set_kind(*kind)
            with self._changing(built, what):
                self._apply_remove(removes)
                self.segments.extend(built)
                for seg in built:
                    self.removed |= {(seg.name, i) for i in seg.ids & dead}
            self._refresh(write=True)

    def buffer_to_seal(self) -> BufferToSeal | None:
        """The buffer as it is now, for the sealer; new changes go to a fresh log from
        here on (an empty one left by a failed seal is kept). The old logs stay listed
        until the segment that holds their adds is in the manifest."""
        with self._state:
            if not self.growing:
                return None
            images = list(self.growing.values())
            try:
                logs = self.logs.rotate()
            except OSError as exc:
                raise self.disk.storage_error(exc, "the sealed segment") from exc
            return BufferToSeal(images, logs, self.new_name("seg"), self.dimension)

    def commit_seal(self, batch: BufferToSeal, segment: Segment) -> None:
        """Serve ``batch``'s images from ``segment`` and forget the logs that held them. An
        image removed or replaced while the segment was built is tombstoned in it."""
        with self._state:
            served = []
            with self._changing([segment], "the sealed segment"):
                self.segments.append(segment)
                for im in batch.images:
                    if self.growing.get(im.image_id) is im:
                        served.append(im.image_id)
                    else:  # removed or replaced while sealing: its sealed copy is dead
                        self.removed.add((segment.name, im.image_id))
                self.logs.paths = [p for p in self.logs.paths if p not in batch.logs]
            for image_id in served:  # from now on served by the segment
                self.growing.drop(image_id)
            self._refresh()
            for p in batch.logs:
                p.unlink(missing_ok=True)
            if self.growing:
                self.growing.since = time.monotonic()

    def commit_merge(
        self, old: list[Segment], merged: Segment | None, removed_then: set[tuple[str, str]]
    ) -> None:
        """Serve ``old`` segments' live images from ``merged`` (built from the images live
        when the merge began, ``removed_then`` being the tombstones of that time); images
        removed since are tombstoned in it. Deletes the old segments' files."""
        with self._state:
            gone = {s.name for s in old}
            late = {i for seg, i in self.removed - removed_then if seg in gone}
            with self._changing([merged] if merged else [], "the merged segment"):
                rest = [s for s in self.segments if s.name not in gone]
                self.segments = ([merged] if merged else []) + rest
                self.removed = {(seg, i) for seg, i in self.removed if seg not in gone}
                if merged:
                    self.removed |= {(merged.name, i) for i in late}
            self._refresh()
        for s in old:
            shutil.rmtree(s.path, ignore_errors=True)  # open mmaps stay valid on POSIX

    def version(self) -> tuple[int, int]:
        """Changes whenever the segments or the tombstones do (a manifest write, a remove)."""
        with self._state:
            return self.generation, len(self.removed)

    def snapshot(self) -> tuple[list[Segment], set[tuple[str, str]]]:
        """The segments and tombstones as they are now (for the merger's plan)."""
        with self._state:
            return list(self.segments), set(self.removed)

    def bytes_on_disk(self) -> int:
        """The index's files: its segments' (measured once each), its logs', manifest's and
        codebook's."""
        with self._state:
            segments = sum(s.bytes_on_disk() for s in self.segments)
            files = [*self.logs.paths, self.dir / manifest.NAME]
        return (
            segments
            + self.vocabulary.bytes_on_disk()
            + sum(p.stat().st_size for p in files if p.exists())
        )

    def quiet_since(self) -> float | None:
        """When the last write came, or None while the buffer holds images."""
        with self._state:
            return None if self.growing else self.last_write

    def _make_view(self) -> View:
        if self._sealed is None:
            self._sealed = sealed_part(self.segments, self.removed)
        words = self.vocabulary.state
        books = words.current, words.previous
        view = self._sealed, self.growing, self.backend, self.dimension, self.generation
        return build_view(*view, *books)

    def close(self) -> None:
        """Close the log and unlock the directory (after the builders have stopped)."""
        with self._state:
            self.logs.close()
        self._lock_fh.close()
