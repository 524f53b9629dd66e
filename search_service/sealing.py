"""Sealing: the growing buffer becomes a segment, in the sealer's own thread.

Due when the buffer holds ``seal_descriptors`` or its oldest image has waited
``seal_seconds``. One seal at a time (the seal lock); a seal never waits for a merge or a
bulk add: it takes the buffer under the store's state lock, builds with no lock held, and
commits under the state lock again (store.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from .background import Loop

if TYPE_CHECKING:
    from .store import IndexStore

log = logging.getLogger(__name__)

# below searches and adds when the cores are busy; the buffer's bound pushes back on adds
# if sealing ever falls behind
NICE = 5


class Sealer:
    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # one seal at a time
        self._loop = Loop(
            "sealer", self._step, store.stop, lambda: store.disk.set_disk_full(False), NICE
        )

    def due(self) -> bool:
        store, s = self.store, self.store.settings
        return bool(store.growing) and (
            store.growing.descriptors >= s.seal_descriptors
            or time.monotonic() - store.growing.since >= s.seal_seconds
        )

    def seal(self) -> bool:
        """Turn the buffer into a segment. True when one was written."""
        with self._lock:
            batch = self.store.buffer_to_seal()
            if batch is None:
                return False
            segment = self.store.disk.write_segment(
                batch.images, self.store.dimension, batch.name, "the sealed segment"
            )
            self.store.commit_seal(batch, segment)
        log.info("sealed %d images into %s", len(batch.images), batch.name)
        return True

    def _step(self) -> None:
        if self.due():
            self.seal()

    def start(self) -> None:
        self._loop.start()

    def join(self, timeout: float) -> None:
        self._loop.join(timeout)
