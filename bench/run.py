"""`make bench`: the benchmark suite. Writes bench/results/bench.json and REPORT.md.

Workload: the real photos of ../shared/data/landmarks (features of the default backend,
aliked, or of --backend; about 1000 per photo) plus GENERATED database images whose
descriptors follow the statistics of the real ones (bench/synthetic.py) to reach 100,
1,000 and 10,000 database images. Queries
are the 79 real landmark photos, each excluded from its own search (leave-one-out), so
top-1 is measured at every size beside the latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.baseline import baseline_run
from bench.common import RESULTS, ROOT, peak_rss_mib
from bench.end_to_end import end_to_end
from bench.extraction import extract_real, extraction_throughput, load_pool, load_real
from bench.searching import grpc_latency, search_paired, search_queries, shortlist_recall

SIZES = (100, 1000, 10000)


def size_run(size: int, cache: Path, out: Path, baseline_queries: int, padding: str) -> None:
    from bench.synthetic import DescriptorModel, DescriptorPool, synthetic_images
    from search_service.index.store import StoreSettings
    from search_service.search.search_params import EVERY_DESCRIPTOR, SearchParams, VerifyParams

    real = load_real(cache)
    model = DescriptorModel(np.concatenate([f.descriptors for _, _, f in real]))
    pad = model if padding == "gaussian" else DescriptorPool(load_pool(cache))
    entries = [(i, lab, {}, f) for i, lab, f in real]
    extra = max(0, size - len(real))
    backend = real[0][2].backend
    entries += [(i, "synthetic", {}, f) for i, f in synthetic_images(pad, extra, 1000, backend)]
    queries = [(i, lab, f) for i, lab, f in real if lab != "distractor"]
    result: dict = {
        "size": size,
        "padding": padding,
        "real_images": len(real),
        "generated_images": extra,
        "queries": len(queries),
    }

    # today's first stage on the same images, in the same run: every segment searched by
    # its rows' votes (Annoy), as before the index had words
    votes_only = StoreSettings(codebook_min_rows=1 << 62)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        engine, result["votes"] = _build(Path(tmp) / "votes", entries, votes_only)
        search_queries(engine, queries, {})  # warm the page cache and code paths
        votes = search_paired(engine, queries, {"in_process": None}, {})
        result["votes"]["in_process"] = votes["in_process"]
        result["votes"]["shortlist"] = shortlist_recall(engine, queries)
        engine.close()

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        # one bulk build, as an offline indexing job would do: no per-request add limit
        engine, built = _build(Path(tmp) / "index", entries, StoreSettings())
        result.update(built)
        del entries

        def run(eng, params=None):
            return search_queries(eng, queries, correct, params)

        correct: dict[str, bool] = {}
        run(engine)  # warm the page cache and code paths
        paired = search_paired(
            engine,
            queries,
            {
                "in_process": None,
                # every query descriptor looks up neighbours (in segments without words and
                # the buffer; here every segment has words: the same as the default)
                "every_lookup": SearchParams(lookup_features=EVERY_DESCRIPTOR),
                # and without the overlay checks of verification (what they cost)
                "overlays_off": SearchParams(verify=VerifyParams(peel_overlays=False)),
            },
            correct,
        )
        result.update(paired)
        result["shortlist"] = shortlist_recall(engine, queries)
        ours = dict(correct)
        result["verify_ms_per_candidate"] = result["in_process"]["verify_ms_per_candidate_p50"]

        result["grpc"] = grpc_latency(engine, tmp, queries)

        if size == 1000 and padding == "gaussian":
            pool, engine._pool = engine._pool, None  # the same index, on one thread
            result["one_thread"] = run(engine)
            engine._pool = pool
        engine.close()

    if baseline_queries:
        result["baseline"] = baseline_run(real, model, size, baseline_queries)
        sample = result["baseline"].get("sampled_queries")
        if sample:
            result["baseline"]["ours_top1_on_sample"] = round(
                float(np.mean([ours[q] for q in sample])), 3
            )
    result["peak_rss_mib"] = peak_rss_mib()
    out.write_text(json.dumps(result))


def _build(folder: Path, entries, settings) -> tuple:  # noqa: ANN001
    """An engine over ``entries`` bulk-added in one call, and what the build measured."""
    from search_service.engine import RequestLimits, SearchEngine
    from search_service.search.search_params import SearchParams

    engine = SearchEngine(
        folder,
        SearchParams(),
        threads=2,
        background=False,
        limits=RequestLimits(max_add_features=1 << 40),
        store_settings=settings,
    )
    t = time.perf_counter()
    engine.add(entries)
    info = engine.info()
    book = engine.store.view.codebook
    return engine, {
        "words": book.words if book else 0,
        "codebook_bytes": book.bytes_in_memory() if book else 0,
        "build_s": round(time.perf_counter() - t, 2),
        "descriptors": info["descriptors"],
        "bytes_on_disk": info["bytes_on_disk"],
        "bytes_per_descriptor": round(info["bytes_per_descriptor"], 1),
        "memory_bytes_per_descriptor": round(info["memory_bytes_per_descriptor"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--child-size", type=int)
    parser.add_argument("--cache")
    parser.add_argument("--out")
    parser.add_argument("--baseline-queries", type=int, default=0)
    parser.add_argument("--padding", default="gaussian", choices=("gaussian", "real"))
    parser.add_argument(
        "--backend", default="aliked", help="features of the search workload (aliked)"
    )
    args = parser.parse_args()
    if args.child_size:
        size_run(
            args.child_size, Path(args.cache), Path(args.out), args.baseline_queries, args.padding
        )
        return 0

    from bench.machine import describe
    from bench.report import rewrite

    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "real.npz"
        print("extracting the real photos ...", flush=True)
        extract_real(cache, args.backend)
        report["backend"] = args.backend
        print("extraction throughput ...", flush=True)
        report["extraction"] = extraction_throughput()
        report["search"] = []
        runs = [(int(s), p) for s in args.sizes.split(",") for p in ("gaussian", "real")]
        for size, padding in runs:
            print(f"search at {size} database images, {padding} padding ...", flush=True)
            out = Path(tmp) / f"size{size}-{padding}.json"
            baseline = {100: 1, 1000: -1}.get(size, 0) if padding == "gaussian" else 0
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.run",
                    "--child-size",
                    str(size),
                    "--cache",
                    str(cache),
                    "--out",
                    str(out),
                    "--baseline-queries",
                    str(baseline),
                    "--padding",
                    padding,
                ],
                check=True,
                cwd=ROOT,
            )
            report["search"].append(json.loads(out.read_text()))
        print("end to end through both services ...", flush=True)
        report["end_to_end"] = [row for b in ("aliked", "sift") for row in end_to_end(b)]
    report["bench_seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / "bench.json").write_text(json.dumps(report, indent=2))
    rewrite()  # with `make bench-large` and `make bench-ingest`'s results, run apart
    print(
        f"wrote {RESULTS / 'bench.json'} and {RESULTS / 'REPORT.md'} in {report['bench_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
