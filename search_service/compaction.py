"""Sealing and merging: the half of IndexStore that runs in the background.

The growing buffer is sealed into a segment once it is large or old enough; segments are
merged into one when there are many, when removed images take much of their rows, or when
writes have paused. A change of the live set is made in memory, committed by one manifest
write, and only then are the files it replaced deleted.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence

from landmark.wire import Features

from .errors import DiskFull, StorageFailure
from .segment import ImageData, Segment
from .segment_writer import Stopped, StoredImages, build_segment, bytes_needed

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often the background thread looks for work
MAX_BACKOFF = 30.0  # longest pause between retries of a failed seal or merge
GROWTH = 4  # a merge takes a segment only if it is at most this times the rows before it


class Compaction:
    """Mixed into IndexStore (store.py), whose state and helpers it uses: every segment the
    store writes is written here (a seal, a merge, or a batch large enough to skip the log)."""

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
            built: list[Segment] = []
            try:
                for i, chunk in enumerate(self._chunks(images)):
                    if i:
                        with self._mutex:
                            name = self._new_name("seg")
                    built.append(self._build(chunk, name, "the change"))
            except BaseException:
                for segment in built:
                    shutil.rmtree(segment.path, ignore_errors=True)
                raise
            with self._mutex:
                saved = self._saved()
                self._apply_remove(removes)  # tombstones go into the same manifest write
                self.segments.extend(built)
                self._commit(saved, built, "the change")
                self.view = self._make_view()
                self._last_write = time.monotonic()

    def _chunks(self, images: list[ImageData]) -> list[list[ImageData]]:
        """``images`` in runs of at most max_segment_rows rows (an image is never split)."""
        chunks: list[list[ImageData]] = [[]]
        rows = 0
        for im in images:
            n = len(im.descriptors)
            if chunks[-1] and rows + n > self.settings.max_segment_rows:
                chunks.append([])
                rows = 0
            chunks[-1].append(im)
            rows += n
        return chunks

    def _build(self, images: Sequence[ImageData], name: str, what: str) -> Segment:
        """Write a segment, refusing up front when the disk cannot hold it; on failure
        nothing of it is left behind."""
        tmp = self.dir / f".tmp-{name}"
        need = bytes_needed(
            images, self.dimension, self.settings.n_trees, self.settings.projection_dim
        )
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
                self.settings.projection_dim,
            )
        except Stopped:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._storage_error(exc, what) from exc

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
                self._commit(saved, [segment], "the sealed segment")
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
        """Rewrite the segments of ``_merge_plan`` as one, dropping removed images' rows."""
        with self._maintenance:
            with self._mutex:
                old = self._merge_plan()
                if not old:
                    return False
                removed = set(self.removed)
                name = self._new_name("seg")
            keep = StoredImages(
                [
                    (s, i)
                    for s in old
                    for i, m in enumerate(s.images)
                    if (s.name, m.image_id) not in removed
                ]
            )
            merged = self._build(keep, name, "the merged segment") if keep else None
            with self._mutex:
                saved = self._saved()
                gone = {s.name for s in old}
                # images removed while merging: tombstone their copy in the merged segment
                late = {i for seg, i in self.removed - removed if seg in gone}
                rest = [s for s in self.segments if s.name not in gone]
                self.segments = ([merged] if merged else []) + rest
                self.removed = {(seg, i) for seg, i in self.removed if seg not in gone}
                self.removed |= {(name, i) for i in late}
                self._commit(saved, [merged] if merged else [], "the merged segment")
                for seg_name in gone:
                    self._ids_cache.pop(seg_name, None)
                self.view = self._make_view()
            for s in old:
                shutil.rmtree(s.path, ignore_errors=True)  # open mmaps stay valid on POSIX
            log.info("merged %d segments into %s (%d images)", len(old), name, len(keep))
            return True

    def _dead_rows(self) -> dict[str, int]:
        """Rows of removed images, per segment name."""
        dead = {s.name: 0 for s in self.segments}
        if self.removed:  # the common case (none) is checked four times a second
            for s in self.segments:
                gone = (m.count for m in s.images if (s.name, m.image_id) in self.removed)
                dead[s.name] = sum(gone)
        return dead

    def _merge_plan(self, dead: dict[str, int] | None = None) -> list[Segment]:
        """The segments the next merge rewrites. Those holding removed rows come first, then
        the others from the smallest up, while they fit in max_segment_rows live rows
        together (no build passes the bound) and each is at most GROWTH times the rows
        chosen before it (a large segment is not rewritten for a few small ones: a row is
        rewritten about once per fourfold growth of its segment). When that chooses one
        segment only, the choice starts again from the next smallest. Worth it when two or
        more are chosen, or one holding removed rows (rewritten alone, whatever its size);
        [] when nothing is."""
        with self._mutex:
            if dead is None:
                dead = self._dead_rows()
            live = {s.name: s.rows - dead[s.name] for s in self.segments}
            order = sorted(self.segments, key=lambda s: (dead[s.name] == 0, live[s.name]))
            for first in range(len(order)):
                plan: list[Segment] = []
                rows = 0
                for s in order[first:]:
                    n = live[s.name]
                    if rows + n > self.settings.max_segment_rows:
                        continue
                    if plan and not dead[s.name] and n > GROWTH * rows:
                        break
                    plan.append(s)
                    rows += n
                if len(plan) >= 2 or any(dead[s.name] for s in plan):
                    return plan
            return []

    def needs_merge(self) -> bool:
        with self._mutex:
            dead = self._dead_rows()  # counted once for both questions
            if len(self.segments) > self.settings.max_segments and len(self._merge_plan(dead)) > 1:
                return True
            rows = sum(s.rows for s in self.segments)
            return rows > 0 and sum(dead.values()) / rows > self.settings.max_dead_fraction

    def _idle_compaction_due(self) -> bool:
        idle = self.settings.idle_merge_seconds
        with self._mutex:
            return (
                idle > 0
                and not self.growing
                and time.monotonic() - self._last_write >= idle
                and bool(self._merge_plan())
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
