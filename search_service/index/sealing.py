"""Sealing: the growing buffer becomes a segment, in the sealer's own thread.

Due when the buffer holds ``seal_descriptors`` or its oldest image has waited
``seal_seconds``. One seal at a time (the seal lock); a seal never waits for a merge or a
bulk add: it takes the buffer under the store's state lock, builds with no lock held, and
commits under the state lock again (store.py). The sealer is handed what it uses: the
buffer to watch, the store's ``take`` and ``commit``, and the disk's ``write``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .background import Loop
from .buffer import BufferToSeal, GrowingBuffer
from .segment import Segment
from .store_settings import StoreSettings

log = logging.getLogger(__name__)

# below searches and adds when the cores are busy; the buffer's bound pushes back on adds
# if sealing ever falls behind
NICE = 5


class Sealer:
    def __init__(
        self,
        settings: StoreSettings,
        buffer: GrowingBuffer,
        take: Callable[[], BufferToSeal | None],
        write: Callable[..., Segment],
        commit: Callable[[BufferToSeal, Segment], None],
        stop: threading.Event,
        recovered: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._take = take
        self._write = write
        self._commit = commit
        self._lock = threading.Lock()  # one seal at a time
        self._loop = Loop("sealer", self._step, stop, recovered, NICE)

    def due(self) -> bool:
        buffer, s = self._buffer, self._settings
        return bool(buffer) and (
            buffer.descriptors >= s.seal_descriptors
            or time.monotonic() - buffer.since >= s.seal_seconds
        )

    def seal(self) -> bool:
        """Turn the buffer into a segment. True when one was written."""
        with self._lock:
            batch = self._take()
            if batch is None:
                return False
            segment = self._write(batch.images, batch.dimension, batch.name, "the sealed segment")
            self._commit(batch, segment)
        log.info("sealed %d images into %s", len(batch.images), batch.name)
        return True

    def _step(self) -> None:
        if self.due():
            self.seal()

    def start(self) -> None:
        self._loop.start()

    def join(self, timeout: float) -> None:
        self._loop.join(timeout)
