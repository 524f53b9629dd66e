"""Shutdown stops a merge in progress at once, and the index loses nothing by it."""

import threading
import time

import numpy as np

from landmark_client import Features
from search_service.errors import Stopped
from search_service.index.store_settings import StoreSettings
from search_service.index.wiring import Index
from search_service.index.writing import OnConflict, Writer


def image(i: int, n: int = 2000) -> tuple[str, str, dict, Features]:
    rng = np.random.default_rng(i)
    d = rng.random((n, 64), dtype=np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = (rng.random((n, 2)) * [640, 480]).astype(np.float32)
    return f"img-{i}", "x", {}, Features("aliked", loc, d, (640, 480))


def test_a_merge_stops_when_the_store_closes(tmp_path):
    settings = StoreSettings(seal_descriptors=10_000)
    index = Index(tmp_path / "index", settings, background=False)
    store = index.store
    for batch in range(3):  # three segments written directly (bulk adds)
        Writer(store).add(
            [image(10 * batch + i) for i in range(10)], ("aliked", 64), OnConflict.ERROR
        )
    assert len(store.segments) == 3
    failure: list[BaseException] = []

    def merge() -> None:
        try:
            index.merger.merge()
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            failure.append(exc)

    worker = threading.Thread(target=merge)
    worker.start()
    time.sleep(0.05)
    start = time.monotonic()
    index.stop.set()  # what close() does first
    worker.join(10)
    stopped_in = time.monotonic() - start
    assert not worker.is_alive() and stopped_in < 2.0, stopped_in
    assert failure and isinstance(failure[0], Stopped)
    index.close()
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".tmp")]
    reopened = Index(tmp_path / "index", settings, background=False)
    assert len(reopened.store.view.by_id) == 30 and len(reopened.store.segments) == 3
    reopened.close()
