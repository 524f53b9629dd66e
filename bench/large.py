"""`make bench-large`: one search node at 200,000 database images (about 200M
descriptors) and, with --sizes, other sizes. Not part of CI: the 200,000-image run writes
about 31 GB and takes over an hour on 2 cores. Writes bench/results/large.json; REPORT.md
shows it.

The index is built the way a node ingests: adds of BATCH generated images (realistic
padding, bench/synthetic.py) after the real photos, each followed by the merges the
background thread would run, then the merges an idle period brings. Peak resident memory is
the build's and the searches' (the bench holds one batch of generated features at a time).
Queries are the real landmark photos, leave-one-out, as in `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from bench.common import RESULTS, ROOT, peak_rss_mib
from bench.extraction import extract_real, load_pool, load_real
from bench.searching import grpc_latency, search_queries, shortlist_recall

SIZES = (200_000,)
BATCH = 1000  # generated images per add (1M descriptors, 0.5 GB as float32)


def large_run(size: int, cache: Path, out: Path) -> None:
    from bench.synthetic import DescriptorPool, synthetic_images
    from search_service.engine import RequestLimits, SearchEngine
    from search_service.search.search_params import EVERY_DESCRIPTOR, SearchParams

    real = load_real(cache)
    pool = DescriptorPool(load_pool(cache))
    backend = real[0][2].backend
    queries = [(i, lab, f) for i, lab, f in real if lab != "distractor"]
    result: dict = {"size": size, "padding": "real", "queries": len(queries)}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        engine = SearchEngine(
            Path(tmp) / "index",
            threads=2,
            background=False,
            limits=RequestLimits(max_add_features=1 << 40),
        )
        merger = engine.index.merger
        merge_s = 0.0

        def merges(idle: bool) -> None:
            nonlocal merge_s
            t = time.perf_counter()
            while (idle or merger.needs_merge()) and merger.merge(reclaim=idle or None):
                pass
            merge_s += time.perf_counter() - t

        t = time.perf_counter()
        engine.add([(i, lab, {}, f) for i, lab, f in real])
        generated = synthetic_images(pool, size - len(real), 1000, backend)
        while True:
            batch = [(i, "synthetic", {}, f) for i, f in islice(generated, BATCH)]
            if not batch:
                break
            engine.add(batch)
            del batch
            merges(idle=False)
            print(f"  {len(engine.store.view.by_id)} images", flush=True)
        merges(idle=True)
        info = engine.info()
        result.update(
            build_s=round(time.perf_counter() - t, 1),
            merge_s=round(merge_s, 1),
            images=info["images"],
            descriptors=info["descriptors"],
            segments=[s.rows for s in engine.store.segments],
            bytes_on_disk=info["bytes_on_disk"],
            bytes_per_descriptor=round(info["bytes_per_descriptor"], 1),
            memory_bytes_per_descriptor=round(info["memory_bytes_per_descriptor"], 1),
            words=engine.store.view.codebook.words if engine.store.view.codebook else 0,
            build_peak_rss_mib=peak_rss_mib(),
        )
        correct: dict[str, bool] = {}
        search_queries(engine, queries, correct)  # warm the page cache and code paths
        # the previous path, on the same index in the same run: every query descriptor
        # looks up neighbours
        every = SearchParams(lookup_features=EVERY_DESCRIPTOR)
        result["every_lookup"] = search_queries(engine, queries, correct, every)
        result["in_process"] = search_queries(engine, queries, correct)
        result["shortlist"] = shortlist_recall(engine, queries)
        result["grpc"] = grpc_latency(engine, tmp, queries)
        engine.close()
    result["peak_rss_mib"] = peak_rss_mib()
    out.write_text(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--child-size", type=int)
    parser.add_argument("--cache")
    parser.add_argument("--out")
    parser.add_argument("--backend", default="aliked")
    args = parser.parse_args()
    if args.child_size:
        large_run(args.child_size, Path(args.cache), Path(args.out))
        return 0

    from bench.machine import describe

    report: dict = {
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "backend": args.backend,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "real.npz"
        print("extracting the real photos ...", flush=True)
        extract_real(cache, args.backend)
        for size in map(int, args.sizes.split(",")):
            print(f"one node at {size} database images ...", flush=True)
            out = Path(tmp) / f"large{size}.json"
            subprocess.run(
                [sys.executable, "-m", "bench.large", "--child-size", str(size)]
                + ["--cache", str(cache), "--out", str(out)],
                check=True,
                cwd=ROOT,
            )
            report["runs"].append(json.loads(out.read_text()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "large.json").write_text(json.dumps(report, indent=2))
    from bench.report import rewrite

    rewrite()  # the report shows every run
    print(f"wrote {RESULTS / 'large.json'} and {RESULTS / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
