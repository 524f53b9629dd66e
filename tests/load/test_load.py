"""Load: 16 concurrent clients mixing extract, search and add for LANDMARK_LOAD_SECONDS
(30 s in `make test`, 60 s in `make load-test`) against real server processes on loopback.

Zero unexpected errors; p50/p99 per operation are printed. Resident memory is compared
where it means something: with no call in flight, after the second third of the run
(the first is warm-up) and at its end; it grows by less than 10% in each server. Under
load it swings by tens of MB with the requests in flight, seals and merges.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from landmark_client import ExtractorClient, ImageToAdd, LandmarkError, SearchClient
from landmark_client.local import spawn_service
from tests.conftest import sample_photo

CLIENTS = 16
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


@pytest.mark.load
def test_sixteen_clients_mixing_extract_search_and_add(tmp_path, capsys):
    seconds = float(os.environ.get("LANDMARK_LOAD_SECONDS", "30"))
    warmup = seconds / 3  # every thread has met every photo size; the index has its size
    env = {**os.environ, "LANDMARK_IDLE_MERGE_SECONDS": "1"}
    procs = []
    try:
        ex_proc, ex_addr = spawn_service(
            ["extractor", "--port", "0", "--metrics-port", "-1"],
            tmp_path / "extractor.log",
            env,
        )
        procs.append(ex_proc)
        se_proc, se_addr = spawn_service(
            [
                "search",
                "--port",
                "0",
                "--metrics-port",
                "-1",
                "--index-dir",
                str(tmp_path / "index"),
            ],
            tmp_path / "search.log",
            env,
        )
        procs.append(se_proc)
        photos = [sample_photo(p).read_bytes() for p in PHOTOS]
        with ExtractorClient(ex_addr, timeout=60) as ex, SearchClient(se_addr, timeout=60) as se:
            gallery = [ex.extract(p, max_features=500) for p in photos]
            se.add_images(
                [
                    ImageToAdd(f"base{i}", p, f)
                    for i, (p, f) in enumerate(zip(PHOTOS, gallery, strict=True))
                ]
            )
            # every id the clients will replace exists from the start: the index stays one size
            se.add_images(
                [
                    ImageToAdd(f"c{n}-{j}", PHOTOS[j % len(PHOTOS)], gallery[j % len(PHOTOS)])
                    for n in range(CLIENTS)
                    for j in range(4)
                ]
            )

            latencies: dict[str, list[float]] = {"extract": [], "search": [], "add": []}
            errors: list[str] = []
            stop = threading.Event()
            lock = threading.Lock()

            def client(n: int, burst: int) -> None:
                rng = np.random.default_rng(n)
                i = 0
                while not stop.is_set():
                    # warm-up opens with all clients searching at once: the peak concurrency
                    # (and the buffers it makes the math libraries keep) comes first
                    op = "search" if i < burst else ("extract", "search", "add")[(n + i) % 3]
                    k = int(rng.integers(len(photos)))
                    start = time.perf_counter()
                    try:
                        if op == "extract":
                            ex.extract(photos[k], max_features=500)
                        elif op == "search":
                            r = se.search(gallery[k], top_k=3)
                            assert r.best is not None and r.best.label == PHOTOS[k]
                        else:  # a bounded id set: memory must stay flat
                            se.add_images(
                                [ImageToAdd(f"c{n}-{i % 4}", PHOTOS[k], gallery[k])],
                                on_conflict="replace",
                            )
                    except (LandmarkError, AssertionError) as exc:
                        with lock:
                            errors.append(f"{op}: {exc}")
                    with lock:
                        latencies[op].append(time.perf_counter() - start)
                    i += 1

            def run(duration: float, burst: int = 0) -> None:
                stop.clear()
                threads = [threading.Thread(target=client, args=(n, burst)) for n in range(CLIENTS)]
                for t in threads:
                    t.start()
                time.sleep(duration)
                stop.set()
                for t in threads:
                    t.join(60)

            def settled_rss() -> dict[int, int]:
                # No call in flight, the index compacted to one segment (idle merge after
                # 1 s here), freed heap handed back (serve trims every 5 s): what stays
                # resident now is what the servers retain.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    info = se.index_info()
                    if info.segments <= 1 and info.growing_descriptors == 0:
                        break
                    time.sleep(0.25)
                time.sleep(5.5)
                if os.environ.get("LANDMARK_LOAD_TRACE"):
                    for p in procs:
                        parts = [rss_bytes(p.pid, f) >> 20 for f in ("RssAnon", "RssFile")]
                        print("anon/file MiB", p.args[4], parts, se.index_info(), flush=True)
                samples = []
                for _ in range(8):
                    samples.append([rss_bytes(p.pid) for p in procs])
                    time.sleep(0.5)
                if os.environ.get("LANDMARK_LOAD_TRACE"):
                    print("search series", [s[1] >> 20 for s in samples], flush=True)
                return {p.pid: min(s[i] for s in samples) for i, p in enumerate(procs)}

            run(warmup, burst=3)
            run(warmup)
            rss0 = settled_rss()
            run(seconds - 2 * warmup)
            rss1 = settled_rss()
            assert se.health() == "SERVING" and ex.health() == "SERVING"

        with capsys.disabled():
            print(f"\nload: {CLIENTS} clients, {seconds:.0f} s")
            for op, xs in latencies.items():
                ms = np.array(xs) * 1e3
                print(
                    f"  {op:8s} {len(ms):6d} calls  p50 {np.percentile(ms, 50):7.1f} ms  "
                    f"p99 {np.percentile(ms, 99):7.1f} ms"
                )
            for name, p in zip(("extractor", "search"), procs, strict=True):
                before, after = rss0[p.pid] / 2**20, rss1[p.pid] / 2**20
                print(f"  {name} resident memory {before:.0f} -> {after:.0f} MiB")
        assert not errors, errors[:5]
        assert all(len(xs) > 10 for xs in latencies.values())
        for p in procs:
            assert rss1[p.pid] < rss0[p.pid] * 1.10, (p.args, rss0[p.pid], rss1[p.pid])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except Exception:
                p.kill()
