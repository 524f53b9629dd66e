"""Merging: segments rewritten into fewer, in the merger's threads.

Due when there are more than ``max_segments`` segments, when removed images take
``max_dead_fraction`` of the rows, or when writes have paused for ``idle_merge_seconds``
and there is something to compact. Two lanes: any merge, and small merges beside a large
one; a merge holds its segments, and no other merge takes them. A merge is built in a
child process from the segments' files (build_apart.py), with no store lock held, so
seals, adds and searches go on meanwhile; it then commits under the state lock, where
images removed during the build are tombstoned in the new segment (store.py). The merger is
handed what it uses: the store's ``snapshot``, ``quiet_since``, ``new_name`` and ``commit``,
and the disk's ``write``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .background import Loop
from .segment import Segment
from .segment_writer import StoredImages
from .store_settings import StoreSettings

Snapshot = Callable[[], tuple[list[Segment], set[tuple[str, str]]]]
Commit = Callable[[list[Segment], Segment | None, set[tuple[str, str]]], None]

log = logging.getLogger(__name__)

# the lowest priority: a merge is never urgent, and takes what searches, adds, seals (and
# extractors sharing the machine) leave
NICE = 19
# the small lane's merges: a large merge may take minutes, seals go on meanwhile
SMALL_MERGE_ROWS = 2_000_000
GROWTH = 4  # a merge takes a segment only if it is at most this times the rows before it


def dead_rows(segments: list[Segment], removed: set[tuple[str, str]]) -> dict[str, int]:
    """Rows of removed images, per segment name."""
    dead = {s.name: 0 for s in segments}
    if removed:  # the common case (none) is checked four times a second
        for s in segments:
            dead[s.name] = sum(m.count for m in s.images if (s.name, m.image_id) in removed)
    return dead


def merge_plan(
    segments: list[Segment], dead: dict[str, int], max_rows: int, reclaim: bool = True
) -> list[Segment]:
    """The segments the next merge rewrites. When it is to ``reclaim`` the rows of removed
    images, those holding them come first; then the others from the smallest up, while
    they fit in ``max_rows`` live rows together (no build passes the bound) and each is at
    most GROWTH times the rows chosen before it (a large segment is not rewritten for a few
    small ones: a row is rewritten about once per fourfold growth of its segment). When
    that chooses one segment only, the choice starts again from the next smallest. Worth it
    when two or more are chosen, or, to reclaim, one holding removed rows (rewritten alone,
    whatever its size); [] when nothing is."""
    if not reclaim:
        dead = dict.fromkeys(dead, 0)
    live = {s.name: s.rows - dead[s.name] for s in segments}
    order = sorted(segments, key=lambda s: (dead[s.name] == 0, live[s.name]))
    for first in range(len(order)):
        plan: list[Segment] = []
        rows = 0
        for s in order[first:]:
            n = live[s.name]
            if rows + n > max_rows:
                continue
            if plan and not dead[s.name] and n > GROWTH * rows:
                break
            plan.append(s)
            rows += n
        if len(plan) >= 2 or any(dead[s.name] for s in plan):
            return plan
    return []


def to_reword(segments: list[Segment], words: str) -> list[Segment]:
    """The segments without the index's current ``words`` (a codebook version; "" before
    it has any): searched by their rows (written before the index had words, or in an
    older format), or built with the words it had before (vocabulary.py). Merges rewrite
    them one at a time, with the current words."""
    if not words:
        return []
    return [s for s in segments if s.inverted is None or s.inverted.codebook_version != words]


class Merger:
    """Two lanes, each a thread: any merge, and a merge of small segments only (each of at
    most a quarter of SMALL_MERGE_ROWS rows, at most SMALL_MERGE_ROWS live rows in all). A
    merge takes segments no other merge holds, so while a large merge runs for minutes, the
    segments seals keep writing are merged beside it and searches do not slow down with
    their number."""

    def __init__(
        self,
        settings: StoreSettings,
        snapshot: Snapshot,
        version: Callable[[], object],
        quiet_since: Callable[[], float | None],
        new_name: Callable[[str], str],
        write: Callable[..., Segment],
        commit: Commit,
        stop: threading.Event,
        recovered: Callable[[], None],
        words: Callable[[], str],
    ) -> None:
        """``snapshot``: the segments and tombstones now; ``version``: a value that changes
        whenever they do; ``quiet_since``: when the last
        write came, None while the buffer holds images; ``write``: IndexDisk.write_segment;
        ``commit``: IndexStore.commit_merge; ``words``: the version of the words builds
        use now ("" before the index has any)."""
        self._settings = settings
        self._words = words
        self._snapshot = snapshot
        self._version = version
        self._nothing_left_at: object = None  # the version at which no merge was left
        self._quiet_since = quiet_since
        self._new_name = new_name
        self._write = write
        self._commit = commit
        self._busy: set[str] = set()  # segments a merge holds
        self._busy_lock = threading.Lock()
        self._loops = [
            Loop("merger", lambda: self._step(None), stop, recovered, NICE),
            Loop("small-merger", lambda: self._step(SMALL_MERGE_ROWS), stop, recovered, NICE),
        ]

    def _plan(
        self, max_rows: int | None, reclaim: bool | None = None
    ) -> tuple[list[Segment], set[tuple[str, str]]]:
        """The plan over the segments no merge holds, and the tombstones it saw. It
        reclaims removed rows first when they pass max_dead_fraction (or when asked, as an
        idle node is); else it merges the smallest, which is what too many segments need."""
        settings = self._settings
        segments, removed = self._snapshot()
        if reclaim is None:
            reclaim = self._dead_share(segments, removed) > settings.max_dead_fraction
        free = [s for s in segments if s.name not in self._busy]
        if max_rows is not None:  # a lane of small merges takes small segments only
            free = [s for s in free if s.rows <= max_rows // GROWTH]
        older = to_reword(free, self._words())
        if older:  # a segment without the index's words is rewritten with them
            return [min(older, key=lambda s: (s.rows, s.name))], removed
        limit = min(max_rows or settings.max_segment_rows, settings.max_segment_rows)
        return merge_plan(free, dead_rows(free, removed), limit, reclaim), removed

    @staticmethod
    def _dead_share(segments: list[Segment], removed: set[tuple[str, str]]) -> float:
        rows = sum(seg.rows for seg in segments)
        return sum(dead_rows(segments, removed).values()) / rows if rows else 0.0

    def plan(self, max_rows: int | None = None, reclaim: bool | None = None) -> list[Segment]:
        return self._plan(max_rows, reclaim)[0]

    def needs_merge(self, max_rows: int | None = None) -> bool:
        """Too many segments, or too many removed rows, and a plan for them in this lane."""
        s = self._settings
        segments, removed = self._snapshot()
        due = (
            len(segments) > s.max_segments
            or self._dead_share(segments, removed) > s.max_dead_fraction
            or bool(to_reword(segments, self._words()))
        )
        return due and bool(self.plan(max_rows))

    def settled(self) -> bool:
        """No merge runs, none is due, and none waits for writes to pause. Asked by every
        GetIndexInfo (and so every add's answer): the plans are made again only once the
        segments or tombstones have changed."""
        with self._busy_lock:
            if self._busy:
                return False
        version = self._version()
        if version == self._nothing_left_at:
            return True
        idle = self._settings.idle_merge_seconds > 0 and bool(self.plan(reclaim=True))
        if idle or self.needs_merge():
            return False
        self._nothing_left_at = version
        return True

    def idle_due(self, max_rows: int | None = None) -> bool:
        idle = self._settings.idle_merge_seconds
        quiet = self._quiet_since()
        return (
            idle > 0
            and quiet is not None
            and time.monotonic() - quiet >= idle
            and bool(self.plan(max_rows, reclaim=True))
        )

    def merge(self, max_rows: int | None = None, reclaim: bool | None = None) -> bool:
        """Rewrite the segments of the plan as one, dropping removed images' rows. With
        ``max_rows``, a small merge: of segments of at most a quarter of it each, and of
        at most that many live rows (default: any merge, up to max_segment_rows)."""
        with self._busy_lock:
            old, removed = self._plan(max_rows, reclaim)
            if not old:
                return False
            self._busy |= {s.name for s in old}
        try:
            name = self._new_name("seg")
            keep = StoredImages.live(old, removed)
            merged = (
                self._write(
                    keep,
                    old[0].dimension,
                    name,
                    "the merged segment",
                    apart=True,
                    # a large merge runs at idle priority; small ones keep pace with seals
                    idle=keep.row_count() > SMALL_MERGE_ROWS,
                )
                if keep
                else None
            )
            self._commit(old, merged, removed)
        finally:
            with self._busy_lock:
                self._busy -= {s.name for s in old}
        log.info("merged %d segments into %s (%d images)", len(old), name, len(keep))
        return True

    def _step(self, max_rows: int | None) -> None:
        if self.needs_merge(max_rows):
            self.merge(max_rows)
        elif self.idle_due(max_rows):
            self.merge(max_rows, reclaim=True)

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    def join(self, timeout: float) -> None:
        for loop in self._loops:
            loop.join(timeout)
