"""`make bench-ingest`'s second part: adds and searches on one search process while a merge
of more than 3M live rows runs, beside the same with the node idle (bench/ingest.py says
how; README and bench/results/REPORT.md show the figures)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, pct, spawn, stop

ROWS = 1_200_000  # per padding segment: 4 of them, 4.8M rows
PER_IMAGE = 1000
# a bulk add of 20 photos every this many seconds: with the small adds, the index grows by
# about 2,300 rows a second, so a merge that takes minutes does not also measure a larger
# index; the first EARLY seconds of the merge are reported apart as well
BULK_EVERY = 15.0
EARLY = 30.0


def query_features(backend: str) -> tuple[list, np.ndarray]:
    """Features of 20 real photos (queries) and a pool of never-queried descriptors."""
    from extractor_service.backends import create_backend
    from extractor_service.extractor import FeatureExtractor, Limits
    from landmark_client.gallery import scan

    core = FeatureExtractor(create_backend(backend), Limits())
    images = scan(DATA)
    queries = [g for g in images if g.label != "distractor"][::4][:20]
    feats = [(g.image_id, g.label, core.extract(g.path.read_bytes()).features) for g in queries]
    pool = [
        core.extract(g.path.read_bytes()).features.descriptors
        for g in images
        if g.label == "distractor"
    ]
    return feats, np.concatenate(pool)


def build_node(index: Path, queries: list, pool: np.ndarray) -> list[str]:
    """4 segments of ROWS generated rows and the queries' photos, a quarter of the padding
    removed (tombstones below max_dead_fraction: no merge is due); returns the padding ids
    still live."""
    from bench.synthetic import DescriptorPool, synthetic_images
    from search_service.index.store_settings import StoreSettings
    from search_service.index.wiring import Index
    from search_service.index.writing import OnConflict

    backend = queries[0][2].backend
    kind = (backend, queries[0][2].dimension)
    opened = Index(index, StoreSettings(max_segments=100), background=False)
    writer = opened.writer
    writer.add([(i, lab, {}, f) for i, lab, f in queries], kind, OnConflict.ERROR)
    generated = synthetic_images(DescriptorPool(pool), 4 * ROWS // PER_IMAGE, PER_IMAGE, backend)
    ids = []
    for _ in range(4):
        batch = [next(generated) for _ in range(ROWS // PER_IMAGE)]
        writer.add([(i, "padding", {}, f) for i, f in batch], kind, OnConflict.ERROR)
        ids += [i for i, _ in batch]
    writer.remove(ids[: len(ids) // 4])
    opened.close()
    return ids[len(ids) // 4 :]


class Load:
    """Small adds, bulk adds and searches in threads, each latency kept with its time."""

    def __init__(self, search: str, queries: list, pool: np.ndarray) -> None:
        from bench.synthetic import DescriptorPool, synthetic_images

        self.search, self.queries = search, queries
        backend = queries[0][2].backend
        self.images = synthetic_images(DescriptorPool(pool), 10**6, PER_IMAGE, backend, seed=7)
        self.lock = threading.Lock()
        self.samples: dict[str, list[tuple[float, float]]] = {
            "small": [],
            "bulk": [],
            "search": [],
            "segments": [],  # the node's segments, sampled: searches cost more with more
        }
        self.stop = threading.Event()
        self.n = 0

    def _next(self, k: int) -> list:
        from landmark_client import ImageToAdd

        with self.lock:
            batch = [next(self.images) for _ in range(k)]
            self.n += k
        return [ImageToAdd(f"load/{self.n}/{i}", "load", f) for i, f in batch]

    def _loop(self, kind: str, every: float) -> None:
        from landmark_client import SearchClient

        with SearchClient(self.search, timeout=120) as client:
            q = 0
            while not self.stop.is_set():
                t = time.monotonic()
                if kind == "search":
                    client.search(self.queries[q % len(self.queries)][2], top_k=5)
                    q += 1
                elif kind == "segments":
                    self.samples[kind].append((t, client.index_info().segments))
                    self.stop.wait(every)
                    continue
                else:
                    client.add_images(self._next(1 if kind == "small" else 20))
                self.samples[kind].append((t, time.monotonic() - t))
                self.stop.wait(max(0.0, every - (time.monotonic() - t)))

    def start(self) -> list[threading.Thread]:
        plan = {"small": 1.0, "bulk": BULK_EVERY, "search": 0.0, "segments": 0.5}
        threads = [threading.Thread(target=self._loop, args=kv) for kv in plan.items()]
        for t in threads:
            t.start()
        return threads

    def stats(self, lo: float, hi: float) -> dict:
        out = {}
        for kind, samples in self.samples.items():
            seen = [v for t, v in samples if lo <= t < hi]
            if kind == "segments":
                out[kind] = {"mean": round(float(np.mean(seen)), 1), "max": max(seen)}
                continue
            ms = [d * 1e3 for d in seen]
            out[kind] = {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99)}
        return out


def under_merge(tmp: Path, backend: str, idle_seconds: float) -> dict:
    from landmark_client import SearchClient

    queries, pool = query_features(backend)
    index = tmp / "merge-index"
    t = time.perf_counter()
    padding = build_node(index, queries, pool)
    built_s = time.perf_counter() - t
    # default settings: seals, and small merges of what they write, go on in both phases
    args = ["search", "--index-dir", str(index), "--idle-merge-seconds", "0"]
    proc, search = spawn(args, tmp, "merge-search.log")
    try:
        load = Load(search, queries, pool)
        with SearchClient(search, timeout=120) as client:
            before = client.index_info()
            threads = load.start()
            idle_from = time.monotonic()
            time.sleep(idle_seconds)
            gone = padding[::7]  # with the first quarter, 36% of the padding: a merge is due
            merge_from = time.monotonic()
            client.remove_images(gone)  # past max_dead_fraction: the merge is due
            largest_buffer, most = 0, client.index_info().descriptors
            while True:
                info = client.index_info()
                largest_buffer = max(largest_buffer, info.growing_descriptors)
                if info.descriptors < most - 1_000_000:  # the removed rows are gone
                    break
                most = max(most, info.descriptors)
                time.sleep(0.5)
            merge_to = time.monotonic()
            load.stop.set()
            for th in threads:
                th.join()
            sealed_after = 0.0
            while client.index_info().growing_descriptors and sealed_after < 60:
                time.sleep(0.2)
                sealed_after += 0.2
    finally:
        stop([proc])
    shutil.rmtree(index, ignore_errors=True)
    return {
        "backend": backend,
        "rows_before": before.descriptors,
        "merge_live_rows": (len(padding) - len(gone)) * PER_IMAGE,
        "node_built_s": round(built_s, 1),
        "merge_s": round(merge_to - merge_from, 1),
        "idle": load.stats(idle_from, merge_from),
        "merging": load.stats(merge_from, merge_to),
        "merging_first_30s": load.stats(merge_from, merge_from + EARLY),
        "largest_buffer_while_merging": largest_buffer,
        "buffer_empty_after_load_s": round(sealed_after, 1),
    }
