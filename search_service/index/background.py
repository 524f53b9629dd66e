"""The loop of a background thread of the store (the sealer's, the merger's)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from landmark.backoff import Backoff

from ..errors import DiskFull, Stopped, StorageFailure

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often a background thread looks for work
MAX_BACKOFF = 30.0  # longest pause between retries of a failed step


class Loop:
    """Runs ``step`` (work when due) every POLL_SECONDS until ``stop`` is set. A failure
    (a full disk, say) is logged once and retried with a growing pause, up to MAX_BACKOFF;
    the first success resets it and calls ``recovered``. The thread runs at ``nice`` (Linux
    threads each have their own; the threads a build starts inherit it): searches and
    adds, at 0, come first when the cores are busy."""

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        stop: threading.Event,
        recovered: Callable[[], None] = lambda: None,
        nice: int = 0,
    ) -> None:
        self.name = name
        self.nice = nice
        self._step = step
        self._stop = stop
        self._recovered = recovered
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except (AttributeError, OSError):  # not Linux, or not allowed: run as it is
                log.debug("%s: could not lower its priority", self.name)
        backoff = Backoff(2 * POLL_SECONDS, MAX_BACKOFF)
        pause = POLL_SECONDS
        while not self._stop.wait(pause):
            try:
                self._step()
            except Stopped:
                return  # shutting down: the log still holds everything
            except (DiskFull, StorageFailure) as exc:
                if not backoff.failing:
                    log.warning("%s paused: %s; retrying", self.name, exc)
                pause = backoff.failed()
                continue
            except Exception:  # keep serving; the next round retries
                if not backoff.failing:
                    log.exception("%s failed; retrying", self.name)
                pause = backoff.failed()
                continue
            if backoff.failing:
                log.info("%s resumed", self.name)
                self._recovered()
            backoff.succeeded()
            pause = POLL_SECONDS
