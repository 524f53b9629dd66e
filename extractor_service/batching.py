"""Dynamic batching, after Triton's dynamic batcher: concurrent extractions of photos of one
size (and the same options) are run as one batch of up to ``max_batch``, waiting at most
``max_delay`` seconds after the first of them arrived for the rest to join.

On an accelerator one batch of 8 costs little more than one photo; on a CPU it buys
nothing, so the extractor batches only when ``--batch-size`` is above 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend, RawFeatures
from .backends.base import BatchBackend

log = logging.getLogger(__name__)

Key = tuple  # what photos must share to run together: shape, max_features, threshold


class Expired(Exception):
    """A photo's deadline passed while it waited for its batch: it was never run."""


@dataclass
class _Pending:
    image: np.ndarray
    key: Key
    arrived: float
    deadline: float | None = None  # time.monotonic() after which nobody waits for it
    result: Future = field(default_factory=Future)


class Batcher:
    """Runs ``run(images, max_features, threshold)`` on batches gathered from concurrent
    ``submit`` calls, in one worker thread (one batch on the device at a time)."""

    def __init__(
        self,
        run: Callable[[list[np.ndarray], int, float], list[RawFeatures]],
        max_batch: int,
        max_delay: float,
    ) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be at least 1 and max_delay not negative")
        self._run = run
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: list[_Pending] = []
        self._wake = threading.Condition()
        self._closed = False
        self.batches: Counter[int] = Counter()  # batches run, by size
        self._worker = threading.Thread(target=self._loop, name="extract-batcher", daemon=True)
        self._worker.start()

    def submit(
        self, image: np.ndarray, max_features: int, threshold: float, deadline: float | None = None
    ) -> RawFeatures:
        """The features of ``image``, once its batch has run (blocks until then). Raises
        Expired when ``deadline`` (time.monotonic()) passes before its batch starts."""
        key = (image.shape, max_features, threshold)
        pending = _Pending(image, key, time.monotonic(), deadline)
        with self._wake:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.append(pending)
            self._wake.notify()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return pending.result.result(wait)
        except FutureTimeout:
            with self._wake:
                queued = any(p is pending for p in self._queue)
                if queued:
                    self._queue = [p for p in self._queue if p is not pending]
                    self._wake.notify()
            if queued:
                raise Expired("the deadline passed while it waited for a batch") from None
            return pending.result.result()  # its batch had started: it finishes

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._worker.join()

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for a batch: the oldest request and up to max_batch - 1 later ones of its
        key, once there are max_batch of them or max_delay has passed since it arrived.
        A request whose caller gave up meanwhile (its deadline) has left the queue."""
        with self._wake:
            while True:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return None
                first = self._queue[0]
                deadline = first.arrived + self.max_delay
                while any(p is first for p in self._queue):
                    same = [p for p in self._queue if p.key == first.key][: self.max_batch]
                    left = deadline - time.monotonic()
                    if len(same) == self.max_batch or left <= 0 or self._closed:
                        taken = {id(p) for p in same}
                        self._queue = [p for p in self._queue if id(p) not in taken]
                        return same
                    self._wake.wait(left)

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            _, max_features, threshold = batch[0].key
            self.batches[len(batch)] += 1
            try:
                results = self._run([p.image for p in batch], max_features, threshold)
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"the backend returned {len(results)} results for {len(batch)} photos"
                    )
            except BaseException as exc:  # every caller of the batch gets the error
                log.error("a batch of %d photos failed: %s", len(batch), exc)
                for p in batch:
                    p.result.set_exception(exc)
                continue
            for p, features in zip(batch, results, strict=True):
                p.result.set_result(features)


class BatchedBackend(Backend):
    """A batch-capable backend (aliked) whose concurrent single calls run as batches."""

    def __init__(self, backend: Backend, max_batch: int, max_delay: float) -> None:
        if not isinstance(backend, BatchBackend):
            raise ValueError(
                f"the {backend.name} backend cannot run batches; set the batch size to 1"
            )
        self.backend: BatchBackend = backend
        self.name, self.dimension = backend.name, backend.dimension
        self.device, self.enlarge = backend.device, backend.enlarge
        self.batcher = Batcher(backend.extract_batch, max_batch, max_delay)

    def extract(
        self,
        image: np.ndarray,
        max_features: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> RawFeatures:
        threshold = self.backend.threshold_for(score_threshold, image_scales)
        return self.batcher.submit(image, max_features, threshold, deadline)
