"""The add side of an ingest run: described photos batched into add requests, in a thread
of their own so that extraction goes on meanwhile."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from landmark.backoff import Backoff
from landmark.wire import Features

from .errors import LandmarkError
from .pool import PAUSE
from .types import ImageToAdd, Photo

log = logging.getLogger(__name__)

BATCH = 16  # photos per add request at most ...
BATCH_SECONDS = 1.0  # ... or what came within this long
GIVE_UP_SECONDS = 120.0  # the search service away (or asking to wait) this long: stop


@dataclass
class Job:
    """A photo on its way: its extraction tries so far and, once described, its features."""

    photo: Photo
    attempts: int = 0
    features: Features | None = None
    failed_on: set[str] = field(default_factory=set)  # replicas whose call failed


class Adder:
    """Takes described photos (``put``), adds them in batches. ``added(jobs, n)`` is told
    of each batch added (n new, the others already there), ``failed(job, why)`` of a
    photo whose features were refused, ``fatal(err)`` of an error that ends the run."""

    def __init__(
        self,
        search: Any,
        on_conflict: str,
        added: Callable[[list[Job], int], None],
        failed: Callable[[Job, str], None],
        fatal: Callable[[LandmarkError, list[Job]], None],
        stop: threading.Event,
    ) -> None:
        self.search = search
        self.on_conflict = on_conflict
        self._added, self._failed, self._fatal = added, failed, fatal
        self._stop = stop
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="ingest-add", daemon=True)
        self.broken = False
        self.retries = 0  # adds sent again

    def start(self) -> None:
        self._thread.start()

    def put(self, job: Job) -> None:
        self._queue.put(job)

    def finish(self) -> None:
        """Add what is left, then return."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        batch: list[Job] = []
        last = time.monotonic()
        while True:
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                if not batch or time.monotonic() - last < BATCH_SECONDS:
                    continue
            else:
                if job is None:
                    break
                batch.append(job)
            if len(batch) >= BATCH or time.monotonic() - last >= BATCH_SECONDS:
                self._add(batch)
                batch, last = [], time.monotonic()
        if batch:
            self._add(batch)

    def _add(self, jobs: list[Job]) -> None:
        if self.broken:
            self._fatal(LandmarkError(grpc.StatusCode.ABORTED, "the run stopped"), jobs)
            return
        try:
            added = self._send(jobs)
        except LandmarkError as err:
            if err.code is grpc.StatusCode.INVALID_ARGUMENT and len(jobs) > 1:
                for job in jobs:  # one photo's features refused: find it, add the others
                    self._add([job])
            elif err.code is grpc.StatusCode.INVALID_ARGUMENT:
                self._failed(jobs[0], f"the search service refused its features: {err.details}")
            else:
                self.broken = True
                self._fatal(err, jobs)
            return
        self._added(jobs, added)

    def _send(self, jobs: list[Job]) -> int:
        """Add the batch, sending it again while the search node asks to wait (its buffer
        full) or is away (restarting), up to GIVE_UP_SECONDS.

        A send that went unanswered (UNAVAILABLE, DEADLINE_EXCEEDED) may have been applied:
        when the caller chose on_conflict "error", it is sent again with "skip", so that the
        photos it added are not taken for photos that were there before ("replace" and
        "skip" are idempotent as they are)."""
        images = [
            ImageToAdd(j.photo.image_id, j.photo.label, j.features, dict(j.photo.metadata))
            for j in jobs
            if j.features is not None
        ]
        since, backoff = time.monotonic(), Backoff(*PAUSE)
        on_conflict = self.on_conflict
        while True:
            try:
                return self.search.add_images(images, on_conflict=on_conflict).added
            except LandmarkError as err:
                waiting = err.code is grpc.StatusCode.RESOURCE_EXHAUSTED and err.retry_after
                away = err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if not (waiting or away) or time.monotonic() - since > GIVE_UP_SECONDS:
                    raise
                if away and on_conflict == "error":
                    on_conflict = "skip"  # it may have been applied (docstring)
                pause = backoff.failed()
                wait = err.retry_after if waiting and err.retry_after else pause
                self.retries += 1
                log.info("add of %d photos: %s; again in %.1fs", len(images), err.code.name, wait)
                if self._stop.wait(wait):
                    raise
