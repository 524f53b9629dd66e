"""A replica following its shard's changes: each, in the stream's order, applied through
the index's own write path (buffer, seal, merge), so that every replica of the shard
holds the same images.

Changes are applied in runs (consecutive adds as one add, consecutive removes as one
remove), and the sequence of the last one applied is kept in the index folder
(``CHANGELOG``, replaced atomically, not fsynced: the index's own log makes each apply
durable) once it is: a restart follows on from there. A crash that loses the latest
record applies a few changes again, which changes nothing: an add replaces the image, a
remove of an image already gone does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from landmark.wire import Features

from ..errors import BufferFull
from ..index.records import Added
from . import changes
from .stream import Changelog
from .subjects import of_shard

log = logging.getLogger(__name__)

STATE = "CHANGELOG"
RUN = 256  # changes applied at once at most

Entry = tuple[str, str, dict[str, str], Features]


class Follower:
    def __init__(
        self,
        changelog: Changelog,
        shard: int,
        shards: int,
        index_dir: Path,
        add: Callable[[list[Entry]], object],
        remove: Callable[[list[str]], object],
    ) -> None:
        """``add``: replaces or adds entries; ``remove``: removes image ids (present or
        not) — the index's write path."""
        self.shard, self.shards = shard, shards
        self._path = Path(index_dir) / STATE
        self._add, self._remove = add, remove
        self.applied = self._read()
        self._pending = 0  # changes after the latest one received, in the stream still
        self._applying = 0  # changes taken up to be applied
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._applied = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follower", daemon=True)
        self._caught_up = threading.Event()
        self._target = changelog.follow(of_shard(shard, shards), self.applied, self._deliver)
        if self.applied >= self._target:
            self._caught_up.set()
        self._thread.start()
        log.info("following shard %d from change %d to %d", shard, self.applied, self._target)

    def catch_up(self, timeout: float) -> bool:
        """Until every change of the shard the stream held when following began is
        applied; False when ``timeout`` seconds pass first."""
        return self._caught_up.wait(timeout)

    def progress(self) -> dict[str, float]:
        """For the metrics: the sequence of the last change applied, the changes still to
        apply, and 1 once caught up with what the stream held when following began."""
        return {
            "applied": self.applied,
            "behind": self.behind,
            "caught_up": float(self._caught_up.is_set()),
        }

    @property
    def received(self) -> int:
        """Changes received from the stream and not yet taken up to be applied."""
        return self._queue.qsize()

    @property
    def behind(self) -> int:
        """This shard's changes not applied yet: in the stream still, received, or being
        applied."""
        return self._pending + self.received + self._applying

    def wait(self, sequence: int, timeout: float) -> bool:
        """Until the change at ``sequence`` (one of this shard's) is applied; False when
        ``timeout`` seconds pass first."""
        with self._applied:
            return self._applied.wait_for(lambda: self.applied >= sequence, timeout)

    def close(self) -> None:
        self._stop.set()
        self._queue.put((0, b""))
        self._thread.join(10)

    def _deliver(self, sequence: int, subject: str, payload: bytes, pending: int) -> None:
        self._queue.put((sequence, payload))
        self._pending = pending

    def _run(self) -> None:
        failed: list[tuple[int, bytes]] = []  # tried again first, in order
        while not self._stop.is_set():
            run, failed = failed or [self._queue.get()], []
            while len(run) < RUN:
                try:
                    run.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            run = [m for m in run if m[0] > self.applied]  # a redelivery after a reconnect
            if self._stop.is_set() or not run:
                continue
            self._applying = len(run)
            try:
                self._apply([changes.decode(payload) for _, payload in run])
            except BufferFull as full:  # sealing catches up: again after its hint
                failed = run
                self._stop.wait(full.retry_after)
                continue
            except Exception:  # noqa: BLE001 (retried: the disk may be full, say)
                log.exception("applying changes %d-%d failed; retrying", run[0][0], run[-1][0])
                failed = run
                self._stop.wait(1.0)
                continue
            self._record(run[-1][0])
            self._applying = 0
            if self.applied >= self._target:
                self._caught_up.set()

    def _apply(self, decoded: list) -> None:
        """Consecutive adds as one add, consecutive removes as one remove, in order."""
        i = 0
        while i < len(decoded):
            j = i
            kind = type(decoded[i])
            while j < len(decoded) and type(decoded[j]) is kind:
                j += 1
            part = decoded[i:j]
            if kind is Added:
                latest = {a.image_id: (a.image_id, a.label, a.metadata, a.features) for a in part}
                self._add(list(latest.values()))
            else:
                self._remove([i for r in part for i in r.image_ids])
            i = j

    def _record(self, sequence: int) -> None:
        tmp = self._path.with_name(f".{STATE}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"shard": self.shard, "shards": self.shards, "applied": sequence}, fh)
        os.replace(tmp, self._path)
        with self._applied:
            self.applied = sequence
            self._applied.notify_all()

    def _read(self) -> int:
        if not self._path.exists():
            return 0
        state = json.loads(self._path.read_text())
        if (state.get("shard"), state.get("shards")) != (self.shard, self.shards):
            raise ValueError(
                f"{self._path} follows shard {state.get('shard')} of {state.get('shards')}, "
                f"not {self.shard} of {self.shards}: give this replica its own index folder"
            )
        return int(state["applied"])
