"""The index as one part: its disk, its store (state, log and manifest), the sealer and the
merger that build segments in the background, and the writer that decides each change.

This is the one place they are put together. Each part is handed what it uses and knows
nothing of the others: the sealer gets the store's buffer, ``buffer_to_seal`` and
``commit_seal`` and the disk's ``write_segment``; the merger gets ``snapshot``,
``version``, ``quiet_since``, ``new_name`` and ``commit_merge``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .disk import IndexDisk
from .merging import Merger
from .sealing import Sealer
from .segment import Segment
from .store import IndexStore
from .store_settings import StoreSettings
from .writing import Writer

JOIN_SECONDS = 30  # how long close() waits for each background thread


class Index:
    """An index directory, opened: ``store`` for its state and view, ``writer`` for
    changes, ``sealer`` and ``merger`` for the background (running when ``background``)."""

    def __init__(
        self,
        directory: Path,
        settings: StoreSettings | None = None,
        background: bool = True,
    ) -> None:
        settings = settings or StoreSettings()
        self.stop = threading.Event()  # set by close(): builds stop, threads end
        self.disk = IndexDisk(Path(directory), settings, self.stop)
        self.store = IndexStore(Path(directory), settings, self.disk)
        store, disk = self.store, self.disk

        def rested() -> None:
            disk.set_disk_full(False)

        def write(images, *args, **kwargs) -> Segment:  # noqa: ANN001, ANN002, ANN003
            """A segment, with its inverted file over the index's words."""
            words = store.vocabulary.for_build(images, store.backend, store.dimension)
            return disk.write_segment(images, *args, codebook=words, **kwargs)

        self.sealer = Sealer(
            settings,
            store.growing,
            take=store.buffer_to_seal,
            write=write,
            commit=store.commit_seal,
            stop=self.stop,
            recovered=rested,
        )

        def words() -> str:
            book = store.vocabulary.codebook
            return book.version if book else ""

        self.merger = Merger(
            settings,
            snapshot=store.snapshot,
            version=store.version,
            quiet_since=store.quiet_since,
            new_name=store.new_name,
            write=write,
            commit=store.commit_merge,
            stop=self.stop,
            recovered=rested,
            words=words,
        )
        self.writer = Writer(store)
        if background:
            self.sealer.start()
            self.merger.start()

    def settled(self) -> bool:
        """Nothing left to do in the background: the buffer is sealed, and no merge runs,
        is due or waits for writes to pause. Until the next write, the index's segments,
        and so every search's answer, stay as they are."""
        return not self.store.growing and self.merger.settled()

    def close(self) -> None:
        self.stop.set()
        self.sealer.join(JOIN_SECONDS)
        self.merger.join(JOIN_SECONDS)
        self.store.close()
