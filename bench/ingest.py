"""`make bench-ingest`: how fast the service can be fed (not in CI; writes
bench/results/ingest.json, and REPORT.md shows it).

Throughput: photos/s from a folder of real photos to a searchable index (`index_folder`,
through every extractor process) with 1 and 2 extractor processes, beside the photos/s the
same processes sustain when driven directly with a saturating load (each kept busy with a
window of calls), in the same run, the two measured in turn, twice. The folder is the
shared landmark photos (distractors left out) repeated under new ids. All processes share
this machine's cores: 2 extractor processes on 2 cores are compared with the same 2
processes driven directly.

Writes under a merge (bench/under_merge.py): one search process holding 4 segments of
1.2M generated descriptors each (real descriptors of never-queried photos, perturbed) and
the real photos, a quarter of the padding removed, default settings; small adds (1 image
a second), bulk adds (20 images, a segment of their own, every 15 s) and searches (real
photos, one after another) run for 20 s with no large merge (seals, and small merges of
what they write, go on), then while a merge rewrites the 4 segments (removing a further
seventh of their images makes it due: more than 3M live rows written). Both phases search
past tombstones alike.
Reports add p50/p99 and search p50 in each phase, and the largest growing buffer seen
while merging.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.common import DATA, RESULTS, spawn, stop
from bench.machine import describe

ROUNDS = 2  # direct and ingest measured in turn, twice


def gallery(folder: Path, repeat: int) -> int:
    """DATA's gallery photos linked ``repeat`` times under new ids; returns the count."""
    from landmark_client.gallery import scan

    n = 0
    for g in scan(DATA):
        if g.label == "distractor":
            continue
        for r in range(repeat):
            link = folder / g.label / f"r{r}-{g.path.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(g.path)
            n += 1
    return n


def drive_directly(addresses: list[str], photos: list[Path]) -> float:
    """Photos/s of the extractors kept saturated: per process, twice its concurrent
    extractions in flight, from photos already read into memory."""
    from landmark_client import ExtractorClient

    work: queue.Queue[bytes] = queue.Queue()
    for p in photos:
        work.put(p.read_bytes())
    clients = [ExtractorClient(a, timeout=300) for a in addresses]

    def worker(client) -> None:  # noqa: ANN001
        while True:
            try:
                data = work.get_nowait()
            except queue.Empty:
                return
            client.extract(data)

    threads = [
        threading.Thread(target=worker, args=(c,))
        for c in clients
        for _ in range(2 * c.info().max_concurrent)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for c in clients:
        c.close()
    return len(photos) / seconds


def throughput(backend: str, processes: int, repeat: int, tmp: Path) -> dict:
    from landmark_client import ExtractorClient, LandmarkClient

    folder = tmp / f"gallery-{backend}-{processes}"
    n = gallery(folder, repeat)
    photos = sorted(p for p in folder.glob("*/*"))
    procs, addresses = [], []
    for i in range(processes):
        proc, address = spawn(["extractor", "--backend", backend], tmp, f"ex{i}.log")
        procs.append(proc)
        addresses.append(address)
    try:
        for a in addresses:  # warm each process up (first calls load and tune the model)
            with ExtractorClient(a, timeout=300) as c:
                for p in photos[:2]:
                    c.extract(p.read_bytes())
        # direct and ingest in turn, ROUNDS times: a drift of the machine's speed during the
        # run falls on both alike
        direct_s = ingest_s = 0.0
        for r in range(ROUNDS):
            direct_s += n / drive_directly(addresses, photos)
            index = tmp / f"index-{backend}-{processes}-{r}"
            search_proc, search = spawn(["search", "--index-dir", str(index)], tmp, "search.log")
            try:
                with LandmarkClient(",".join(addresses), search, timeout=300) as client:
                    report = client.index_folder(folder)
                    searchable = client.search.index_info().images
            finally:
                stop([search_proc])
                shutil.rmtree(index, ignore_errors=True)
            assert report.failed == [] and searchable == n, (report.failed, searchable)
            ingest_s += report.seconds
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)
    direct, rate = ROUNDS * n / direct_s, ROUNDS * n / ingest_s
    row = {
        "backend": backend,
        "processes": processes,
        "photos": n,
        "direct_photos_per_s": round(direct, 3),
        "ingest_photos_per_s": round(rate, 3),
        "ratio": round(rate / direct, 3),
        "rounds": ROUNDS,
        "described": report.described,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sift,aliked")
    parser.add_argument("--repeat", default="sift=4,aliked=1", help="gallery repeats")
    parser.add_argument(
        "--part", choices=("all", "throughput", "merge", "changelog"), default="all"
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    repeat = dict(kv.split("=") for kv in args.repeat.split(","))
    out = RESULTS / "ingest.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    # each part names the machine and the time of its own run: `--part` runs one of them
    run = {"machine": describe(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        if args.part in ("all", "throughput"):
            result["throughput"] = [
                throughput(b, n, int(repeat.get(b, 1)), Path(tmp))
                for b in args.backends.split(",")
                for n in (1, 2)
            ]
            result["throughput_run"] = run
        if args.part in ("all", "merge"):
            from bench.under_merge import under_merge

            result["under_merge"] = {
                **under_merge(Path(tmp), "aliked", args.idle_seconds),
                "run": run,
            }
            print(json.dumps(result["under_merge"], indent=2), flush=True)
        if args.part in ("all", "changelog"):
            from bench.changelog_adds import changelog_adds

            result["changelog"] = {**changelog_adds(Path(tmp)), "run": run}
            print(json.dumps(result["changelog"], indent=2), flush=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    from bench.report import rewrite

    rewrite()
    print(f"wrote {out} and {RESULTS / 'REPORT.md'}")


if __name__ == "__main__":
    main()
