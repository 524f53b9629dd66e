"""Merging: segments rewritten into fewer, in the merger's own thread.

Due when there are more than ``max_segments`` segments, when removed images take
``max_dead_fraction`` of the rows, or when writes have paused for ``idle_merge_seconds``
and there is something to compact. One merge at a time (the merge lock). A merge builds
from the segments' files with no store lock held and with one thread for Annoy's trees,
so seals, adds and searches go on meanwhile; it then commits under the state lock, where
images removed during the build are tombstoned in the new segment (store.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from .background import Loop
from .segment import Segment
from .segment_writer import StoredImages

if TYPE_CHECKING:
    from .store import IndexStore

log = logging.getLogger(__name__)

# the lowest priority: a merge is never urgent, and takes what searches, adds, seals (and
# extractors sharing the machine) leave
NICE = 19
GROWTH = 4  # a merge takes a segment only if it is at most this times the rows before it


def dead_rows(segments: list[Segment], removed: set[tuple[str, str]]) -> dict[str, int]:
    """Rows of removed images, per segment name."""
    dead = {s.name: 0 for s in segments}
    if removed:  # the common case (none) is checked four times a second
        for s in segments:
            dead[s.name] = sum(m.count for m in s.images if (s.name, m.image_id) in removed)
    return dead


def merge_plan(segments: list[Segment], dead: dict[str, int], max_rows: int) -> list[Segment]:
    """The segments the next merge rewrites. Those holding removed rows come first, then
    the others from the smallest up, while they fit in ``max_rows`` live rows together (no
    build passes the bound) and each is at most GROWTH times the rows chosen before it (a
    large segment is not rewritten for a few small ones: a row is rewritten about once per
    fourfold growth of its segment). When that chooses one segment only, the choice starts
    again from the next smallest. Worth it when two or more are chosen, or one holding
    removed rows (rewritten alone, whatever its size); [] when nothing is."""
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


class Merger:
    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # one merge at a time
        self._loop = Loop(
            "merger", self._step, store.stop, lambda: store.disk.set_disk_full(False), NICE
        )

    def plan(self) -> list[Segment]:
        segments, removed = self.store.snapshot()
        dead = dead_rows(segments, removed)
        return merge_plan(segments, dead, self.store.settings.max_segment_rows)

    def needs_merge(self) -> bool:
        s = self.store.settings
        segments, removed = self.store.snapshot()
        dead = dead_rows(segments, removed)  # counted once for both questions
        if (
            len(segments) > s.max_segments
            and len(merge_plan(segments, dead, s.max_segment_rows)) > 1
        ):
            return True
        rows = sum(seg.rows for seg in segments)
        return rows > 0 and sum(dead.values()) / rows > s.max_dead_fraction

    def idle_due(self) -> bool:
        idle = self.store.settings.idle_merge_seconds
        return (
            idle > 0
            and not self.store.growing
            and time.monotonic() - self.store.last_write >= idle
            and bool(self.plan())
        )

    def merge(self) -> bool:
        """Rewrite the segments of the plan as one, dropping removed images' rows."""
        with self._lock:
            segments, removed = self.store.snapshot()
            dead = dead_rows(segments, removed)
            old = merge_plan(segments, dead, self.store.settings.max_segment_rows)
            if not old:
                return False
            name = self.store.new_name("seg")
            keep = StoredImages(
                [
                    (s, i)
                    for s in old
                    for i, m in enumerate(s.images)
                    if (s.name, m.image_id) not in removed
                ]
            )
            merged = (
                self.store.disk.write_segment(
                    keep, self.store.dimension, name, "the merged segment", 1
                )
                if keep
                else None
            )
            self.store.commit_merge(old, merged, removed)
        log.info("merged %d segments into %s (%d images)", len(old), name, len(keep))
        return True

    def _step(self) -> None:
        if self.needs_merge() or self.idle_due():
            self.merge()

    def start(self) -> None:
        self._loop.start()

    def join(self, timeout: float) -> None:
        self._loop.join(timeout)
