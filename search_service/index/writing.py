"""Adds and removes: which images a change touches, decided under one write lock.

A small add goes through the store's log into the growing buffer under the lock. A bulk
add (at least ``seal_descriptors`` descriptors) builds its segments first, with no lock
held, so it waits neither for other adds nor for a seal or a merge; it then takes the
lock, decides its conflicts again against the index as it is now (another add may have
come meanwhile), and names its segments in the manifest. Every change is all or nothing.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from enum import Enum

from landmark.wire import Features

from ..errors import AlreadyExists, FeatureMismatch
from .buffer import image_data
from .images import ImageData
from .segment import Segment
from .store import IndexStore

Entry = tuple[str, str, dict[str, str], Features]


class OnConflict(Enum):
    ERROR = 0
    SKIP = 1
    REPLACE = 2


@dataclass(frozen=True)
class AddResult:
    added: int
    skipped: int
    replaced: int


@dataclass(frozen=True)
class Decision:
    present: list[str]  # ids already in the index
    skip: set[str]
    replace: list[str]

    def result(self, entries: int) -> AddResult:
        return AddResult(
            entries - len(self.skip) - len(self.replace), len(self.skip), len(self.replace)
        )


class Writer:
    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # decides conflicts and applies, one change at a time

    def add(
        self, entries: list[Entry], kind: tuple[str, int], on_conflict: OnConflict
    ) -> AddResult:
        size = sum(len(f) for *_, f in entries)
        if size < self.store.settings.seal_descriptors:
            with self._lock:
                d = self._decide(entries, kind, on_conflict)
                adds = [e for e in entries if e[0] not in d.skip]
                self.store.apply(d.replace, adds)
                return d.result(len(entries))
        with self._lock:  # refuse early what would be refused anyway
            self._decide(entries, kind, on_conflict)
        built = self._build(entries, kind[1])
        kept = False
        try:
            with self._lock:
                d = self._decide(entries, kind, on_conflict)
                if any(self.store.in_buffer(i) for i in d.replace):
                    # a removal from the buffer needs the log: the whole change goes there
                    self.store.apply(d.replace, [e for e in entries if e[0] not in d.skip])
                else:
                    self.store.add_segments(built, kind, d.replace, d.skip, "the change")
                    kept = True
                return d.result(len(entries))
        finally:
            if not kept:
                for segment in built:
                    shutil.rmtree(segment.path, ignore_errors=True)

    def remove(self, image_ids: list[str]) -> tuple[int, list[str]]:
        with self._lock:
            found = sorted({i for i in image_ids if self.store.contains(i)})
            self.store.apply(found, [])
            return len(found), sorted(set(image_ids) - set(found))

    def _decide(
        self, entries: list[Entry], kind: tuple[str, int], on_conflict: OnConflict
    ) -> Decision:
        store = self.store
        if store.backend and (store.backend, store.dimension) != kind:
            backend, dimension = kind
            raise FeatureMismatch(
                f"this index holds {store.backend} features ({store.dimension}-D); these "
                f"are {backend} ({dimension}-D). Use the extractor backend the index was "
                f"built with, or a separate index directory for {backend}"
            )
        present = [e[0] for e in entries if store.contains(e[0])]
        if present and on_conflict is OnConflict.ERROR:
            raise AlreadyExists(
                f"{len(present)} image id(s) already in the index, e.g. {present[:3]}; "
                "remove them first or add with on_conflict SKIP or REPLACE"
            )
        skip = set(present) if on_conflict is OnConflict.SKIP else set()
        replace = present if on_conflict is OnConflict.REPLACE else []
        return Decision(present, skip, replace)

    def _build(self, entries: list[Entry], dimension: int) -> list[Segment]:
        """The segments of a bulk add, at most max_segment_rows rows each (an image is
        never split); on failure none is left behind."""
        images = [image_data(*e) for e in entries]
        chunks: list[list[ImageData]] = [[]]
        rows = 0
        for im in images:
            n = len(im.descriptors)
            if chunks[-1] and rows + n > self.store.settings.max_segment_rows:
                chunks.append([])
                rows = 0
            chunks[-1].append(im)
            rows += n
        built = []
        words = self.store.vocabulary.for_build(
            images, entries[0][3].backend, entries[0][3].dimension
        )
        try:
            for chunk in chunks:
                name = self.store.new_name("seg")
                built.append(
                    self.store.disk.write_segment(
                        chunk, dimension, name, "the change", codebook=words
                    )
                )
        except BaseException:
            for segment in built:
                shutil.rmtree(segment.path, ignore_errors=True)
            raise
        return built
