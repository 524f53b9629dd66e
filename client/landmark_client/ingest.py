"""Ingest: photos → every extractor replica → batched adds → the index.

Extraction is fanned out over every replica the extractor address names (pool.py), each
kept busy with a window of calls in flight sized from what it reports. A replica that fails
or goes away is rested with a growing pause and its photos go to the others; when all is
well no photo is extracted twice. Adds are batched and sent by a thread of their own while
extraction goes on (adding.py); an add refused while the search node's buffer is full or
while it restarts is sent again, with on_conflict "skip", so nothing is lost and nothing
added twice. Memory is bounded by the windows, whatever the number of photos. Each add
request is all or nothing: an interrupted run leaves no half-added image, and a rerun adds
what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc

from . import _convert as conv
from .adding import BATCH, GIVE_UP_SECONDS, Adder, Job
from .errors import LandmarkError
from .pool import Replica, connect
from .progress import NoProgress, ProgressBar
from .types import IngestReport, Photo

log = logging.getLogger(__name__)

ATTEMPTS = 3  # extraction tries of one photo (on other replicas when there are several)
PHOTO_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT}  # the photo is at fault: report, go on
FATAL = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
}


class Ingest:
    """One run; ``run(photos)`` returns the report (see the module docstring)."""

    def __init__(
        self,
        extractor: Any,  # ExtractorClient: its address and connection
        search: Any,  # SearchClient
        report: IngestReport,
        progress: ProgressBar,
        *,
        on_conflict: str = "skip",
        timeout: float = 60.0,
        extract_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.report = report
        self.progress = progress
        self.timeout = timeout
        self.options = dict(extract_options or {})
        self.metadata = extractor.connection.metadata
        self.replicas, self._channels = connect(extractor.address, extractor.connection)
        self._cv = threading.Condition()  # guards the replicas' counts, retries, report
        self._retry: deque[Job] = deque()
        self._fatal: LandmarkError | None = None
        self._stop = threading.Event()
        # photos taken and not yet added or failed: bounds memory whatever their number
        self._outstanding = threading.Semaphore(sum(r.window for r in self.replicas) + 2 * BATCH)
        self.adder = Adder(search, on_conflict, self._added, self._failed, self._end, self._stop)

    def run(self, photos: Iterable[Photo]) -> IngestReport:
        start = time.monotonic()
        self.adder.start()
        try:
            self._feed(iter(photos))
        except BaseException:
            self._stop.set()  # Ctrl-C: no new call; what was added stays whole
            raise
        finally:
            self._wait_idle()
            self.adder.finish()
            for channel in self._channels:
                channel.close()
            self.report.seconds = time.monotonic() - start
            self.report.described = {r.address: r.described for r in self.replicas}
            self.report.add_retries = self.adder.retries
        if self._fatal is not None:
            raise self._fatal
        return self.report

    # -- extraction ---------------------------------------------------------------------

    def _feed(self, photos: Iterator[Photo]) -> None:
        exhausted = False
        while not self._stop.is_set() and self._fatal is None:
            job = self._next_job(photos, exhausted)
            if job is None:
                exhausted = True
                with self._cv:
                    if not self._retry and not self._busy():
                        return
                    self._cv.wait(0.2)
                continue
            replica = self._free_replica(job)
            if replica is None:
                return
            self._submit(job, replica)

    def _next_job(self, photos: Iterator[Photo], exhausted: bool) -> Job | None:
        with self._cv:
            if self._retry:
                return self._retry.popleft()
        if exhausted:
            return None
        while not self._outstanding.acquire(timeout=0.2):
            if self._stop.is_set() or self._fatal is not None:
                return None
        photo = next(photos, None)
        if photo is None:
            self._outstanding.release()
            return None
        return Job(photo)

    def _busy(self) -> bool:
        return any(r.in_flight for r in self.replicas)

    def _free_replica(self, job: Job) -> Replica | None:
        """The least loaded replica with room in its window, preferring one that has not
        failed this photo (waiting for one); None when the run must stop (no replica
        answering for GIVE_UP_SECONDS, or a fatal error)."""
        since = time.monotonic()
        with self._cv:
            while not self._stop.is_set() and self._fatal is None:
                now = time.monotonic()
                free = [r for r in self.replicas if r.free(now)]
                fresh = [r for r in free if r.address not in job.failed_on]
                if free:
                    replica = min(fresh or free, key=lambda r: r.in_flight / r.window)
                    replica.in_flight += 1
                    return replica
                if not self._busy() and now - since > GIVE_UP_SECONDS:
                    self._fatal = LandmarkError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"no extractor at {', '.join(r.address for r in self.replicas)} "
                        f"answered for {GIVE_UP_SECONDS:.0f}s; the photos added so far stay "
                        "indexed: run the same command again to go on",
                    )
                    return None
                self._cv.wait(0.1)
        return None

    def _submit(self, job: Job, replica: Replica) -> None:
        job.attempts += 1
        try:
            request = conv.extract_request(
                job.photo.image,
                self.options.get("max_features", 0),
                self.options.get("max_image_size", 0),
                job.photo.image_id,
                self.options.get("score_threshold"),
                self.options.get("image_scales"),
            )
        except (OSError, ValueError) as exc:  # an unreadable file, an unknown input
            with self._cv:
                replica.in_flight -= 1
            self._failed(job, f"could not read the photo: {exc}")
            return
        call = replica.stub.Extract.future(request, timeout=self.timeout, metadata=self.metadata)
        call.add_done_callback(lambda f: self._extracted(job, replica, f))

    def _extracted(self, job: Job, replica: Replica, call: grpc.Future) -> None:
        """A call ended (in a gRPC thread). The photo is handed on before the call stops
        counting as in flight, so a run never ends with a photo between two hands."""
        try:
            self._settle(job, replica, call)
        finally:
            with self._cv:
                replica.in_flight -= 1
                self._cv.notify_all()

    def _settle(self, job: Job, replica: Replica, call: grpc.Future) -> None:
        """Hand the features on, or decide what becomes of the photo."""
        err = call.exception()
        code: grpc.StatusCode = grpc.StatusCode.OK if err is None else err.code()
        with self._cv:
            if err is None:
                replica.succeeded()
            elif code not in PHOTO_ERRORS:
                replica.failed()
                job.failed_on.add(replica.address)
        if err is None:
            try:
                job.features = conv.features_from_proto(call.result().features)
            except ValueError as exc:
                self._failed(job, f"the extractor's answer is malformed: {exc}")
                return
            self.adder.put(job)
        elif code in PHOTO_ERRORS:
            self._failed(job, err.details() or code.name)
        elif code in FATAL:
            self._end(LandmarkError.from_rpc(err, "extractor", replica.address), [job])
        elif job.attempts >= ATTEMPTS or self._stop.is_set():
            self._failed(job, f"extraction failed {job.attempts} times, last: {code.name}")
        else:
            log.info("extractor %s: %s; %s goes to another", replica.address, code, job.photo)
            with self._cv:
                self.report.retried += 1
                self._retry.append(job)

    def _wait_idle(self) -> None:
        with self._cv:
            while self._busy():
                self._cv.wait(0.2)

    # -- what becomes of each photo -----------------------------------------------------

    def _added(self, jobs: list[Job], added: int) -> None:
        with self._cv:
            self.report.added += added
            self.report.already_indexed += len(jobs) - added
        self.progress.update(len(jobs))
        for _ in jobs:
            self._outstanding.release()

    def _failed(self, job: Job, why: str) -> None:
        with self._cv:
            self.report.failed.append((job.photo.image_id, why))
            failed = len(self.report.failed)
        self.progress.set_postfix_str(f"{failed} failed")
        self.progress.update(1)
        self._outstanding.release()

    def _end(self, err: LandmarkError, jobs: list[Job]) -> None:
        with self._cv:
            if self._fatal is None:
                self._fatal = err
            self._cv.notify_all()
        for _ in jobs:
            self._outstanding.release()


def ingest(
    photos: Iterable[Photo],
    extractor: Any,
    search: Any,
    *,
    on_conflict: str = "skip",
    timeout: float = 60.0,
    progress: ProgressBar | None = None,
    report: IngestReport | None = None,
    extract_options: Mapping[str, Any] | None = None,
) -> IngestReport:
    """Extract and add ``photos`` through every extractor replica (see the module
    docstring); ``timeout`` bounds each call. Returns the report; LandmarkError when the
    run cannot go on (no replica or search service answering, a wrong backend, no access)."""
    run = Ingest(
        extractor,
        search,
        report or IngestReport(),
        progress or NoProgress(),
        on_conflict=on_conflict,
        timeout=timeout,
        extract_options=extract_options,
    )
    return run.run(photos)
