"""The markdown report of a benchmark run."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import RESULTS
from bench.extraction import aliked_speedups
from bench.report_apart import (
    first_stage_section,
    ingest_section,
    large_section,
    lookups_section,
)

LARGE = 200_000  # the size of the one-node targets (`make bench-large`)
TARGETS = {
    "search p50 at 1,000 images (both paddings)": (
        "<= 80 ms",
        lambda r: _worst_p50(r, 1000) <= 80,
    ),
    "search p50 at 10,000 images (both paddings)": (
        "<= 100 ms",
        lambda r: _worst_p50(r, 10000) <= 100,
    ),
    "bytes in memory per descriptor (1,000 images and more)": (
        "<= 32",
        lambda r: (
            max(s["memory_bytes_per_descriptor"] for s in r["search"] if s["size"] >= 1000) <= 32
        ),
    ),
    "top-1 at every size (each padding)": (
        "within 0.01 of 100 images",
        lambda r: all(
            s["in_process"]["top1"]
            >= _size(r, 100, s.get("padding", "gaussian"))["in_process"]["top1"] - 0.01
            for s in r["search"]
        ),
    ),
    "speed-up over the seed at 1,000 images": (">= 100x", lambda r: _speedup(r, 1000) >= 100),
    "top-1 vs the seed (sampled queries, 100 images)": (
        "equal or better",
        lambda r: (
            _size(r, 100)["baseline"]["ours_top1_on_sample"]
            >= _size(r, 100)["baseline"]["top1_on_sample"]
        ),
    ),
    "verification per candidate": (
        "<= 2 ms",
        lambda r: max(s["verify_ms_per_candidate"] for s in r["search"]) <= 2,
    ),
    "gRPC + serialization share of a search": (
        "<= 10%",
        lambda r: max(s["grpc"]["share_of_search_p50"] for s in r["search"]) <= 0.10,
    ),
    "overlay checks: search p50 against the same run without them": (
        "<= +10%",
        lambda r: (
            max((_overlay_cost(s) for s in r["search"] if "overlays_off" in s), default=1) <= 1.10
        ),
    ),
    "building 1,000,000 descriptors": ("<= 60 s", lambda r: _size(r, 1000)["build_s"] <= 60),
    "bytes on disk per descriptor": (
        "<= 350",
        lambda r: max(s["bytes_per_descriptor"] for s in r["search"]) <= 350,
    ),
    "200,000 images on one node: search p50": (
        "<= 150 ms",
        lambda r: _large(r, LARGE)["in_process"]["p50_ms"] <= 150,
    ),
    "200,000 images on one node: peak resident memory": (
        "<= 8 GiB",
        lambda r: _large(r, LARGE)["peak_rss_mib"] <= 8 * 1024,
    ),
    "200,000 images on one node: top-1": (
        "within 0.01 of 100 images (real padding)",
        lambda r: (
            _large(r, LARGE)["in_process"]["top1"]
            >= _size(r, 100, "real")["in_process"]["top1"] - 0.01
        ),
    ),
}


def overlays_section(report: dict) -> list[str]:
    rows = [s for s in report["search"] if "overlays_off" in s]
    if not rows:
        return []
    lines = [
        "",
        "## Overlay checks (verification peels frame-locked fits off): their cost",
        "",
        "The same index and queries in the same run, with `VerifyParams.peel_overlays` off.",
        "",
        "| images | padding | p50 ms off / on | ratio | verify p50 ms off / on | top-1 off / on |",
        "|---|---|---|---|---|---|",
    ]
    for s in rows:
        off, on = s["overlays_off"], s["in_process"]
        lines.append(
            f"| {s['size']:,} | {s.get('padding', 'gaussian')} | {off['p50_ms']} / "
            f"{on['p50_ms']} | {_overlay_cost(s):.2f} | {off['verify_ms_p50']} / "
            f"{on['verify_ms_p50']} | {off['top1']:.3f} / {on['top1']:.3f} |"
        )
    return lines


def _worst_p50(report: dict, size: int) -> float:
    return max(s["in_process"]["p50_ms"] for s in report["search"] if s["size"] == size)


def _overlay_cost(s: dict) -> float:
    return s["in_process"]["p50_ms"] / s["overlays_off"]["p50_ms"]


def _large(report: dict, size: int) -> dict:
    for run in report.get("large", {}).get("runs", []):
        if run["size"] == size:
            return run
    raise KeyError(size)


def _size(report: dict, size: int, padding: str = "gaussian") -> dict:
    for s in report["search"]:
        if s["size"] == size and s.get("padding", "gaussian") == padding:
            return s
    raise KeyError(size)


def _speedup(report: dict, size: int) -> float:
    s = _size(report, size)
    return s["baseline"]["p50_ms"] / s["in_process"]["p50_ms"]


def write_report(report: dict, path: Path) -> None:
    m = report["machine"]
    lines = [
        "# Benchmark report",
        "",
        f"Run {report['date']} in {report['bench_seconds']} s on **{m['cpu']}**, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}.",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()) + ".",
        "",
        f"Workload: {report.get('backend', 'sift')} features (about 1000 per photo) of the "
        "95 real photos of "
        "../shared/data/landmarks, plus GENERATED database images to reach each size, padded "
        "two ways (bench/synthetic.py): `gaussian`, descriptors drawn with the mean and "
        "covariance of the real ones, and `real`, real descriptors of photos that are never "
        "queries, slightly perturbed, which compete for votes as real confusers do. "
        "Queries: the 79 real landmark photos, each excluded from its own search, so top-1 is "
        "measured at every size.",
        "",
        "## Targets",
        "",
        "| target | goal | met |",
        "|---|---|---|",
    ]
    for name, (goal, check) in TARGETS.items():
        try:
            met = "yes" if check(report) else "**no**"
        except (KeyError, ZeroDivisionError):
            met = "not measured"
        lines.append(f"| {name} | {goal} | {met} |")
    lines += [
        "",
        "## Search latency per query (about 1000 query descriptors)",
        "",
        "Padding `gaussian`: generated descriptors with the real ones' mean and covariance; "
        "`real`: real descriptors of photos that are never queries, slightly perturbed "
        "(bench/synthetic.py). Neighbours, matching and verify are p50 ms of each stage.",
        "",
        "| images | padding | descriptors | top-1 | in-process p50 / p95 ms | neighbours | "
        "matching | verify | gRPC p50 / p95 ms | gRPC+serialization share | build s | "
        "bytes/descr | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["search"]:
        i, g = s["in_process"], s["grpc"]
        lines.append(
            f"| {s['size']:,} | {s.get('padding', 'gaussian')} | {s['descriptors']:,} | "
            f"{i['top1']:.3f} | {i['p50_ms']} / "
            f"{i['p95_ms']} | {i['neighbours_ms_p50']} | {i['matching_ms_p50']} | "
            f"{i['verify_ms_p50']} | {g['p50_ms']} / {g['p95_ms']} | "
            f"{g['share_of_search_p50']:.1%} | {s['build_s']} | {s['bytes_per_descriptor']} | "
            f"{s['peak_rss_mib']} |"
        )
    lines += first_stage_section(report)
    lines += lookups_section(report)
    lines += overlays_section(report)
    lines += large_section(report.get("large"))
    lines += ingest_section(report.get("ingest"))
    lines += [
        "",
        "## Against the seed's algorithm (BASELINE, written inside the bench)",
        "",
        "| images | seed p50 ms | k-d tree ms | verify ms | ours p50 ms | speed-up | "
        "seed top-1 | ours top-1 (same queries) | how |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["search"]:
        b = s.get("baseline")
        if not b:
            continue
        how = b.get("how") or f"{len(b['sampled_queries'])} sampled query, run whole"
        lines.append(
            f"| {s['size']:,} | {b['p50_ms']:,} | {b['kdtree_ms_p50']:,} | "
            f"{b['verify_ms_p50']:,} | "
            f"{s['in_process']['p50_ms']} | {b['p50_ms'] / s['in_process']['p50_ms']:.0f}x | "
            f"{b.get('top1_on_sample', '-')} | {b.get('ours_top1_on_sample', '-')} | {how} |"
        )
    lines.append("")
    lines.append("At 10,000 images the seed's algorithm is not run (hours per query).")
    one = (
        _size(report, 1000).get("one_thread")
        if any(s["size"] == 1000 for s in report["search"])
        else None
    )
    if one:
        two = _size(report, 1000)["in_process"]
        lines += [
            "",
            "## Both cores (1,000 images)",
            "",
            "| threads | p50 ms | ANN ms | verify ms |",
            "|---|---|---|---|",
            f"| 1 | {one['p50_ms']} | {one['neighbours_ms_p50']} | {one['verify_ms_p50']} |",
            f"| 2 | {two['p50_ms']} | {two['neighbours_ms_p50']} | {two['verify_ms_p50']} |",
        ]
    lines += [
        "",
        "## Extraction throughput",
        "",
        "| backend | max image size | requests at once | cores used | images/s | "
        "images/s per core |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["extraction"]:
        if "note" in row:
            lines.append(f"| {row['backend']} | {row['note']} | | | | |")
        else:
            lines.append(
                f"| {row['backend']} | {row['max_image_size']} | {row['threads']} | "
                f"{row.get('cores_used', row['threads'])} | {row['images_per_s']} | "
                f"{row['images_per_s_per_core']} |"
            )
    speedups = aliked_speedups(report["extraction"])
    if speedups:
        lines += [
            "",
            "The default aliked extractor (the whole extraction in one ONNX graph) against the "
            "previous path (the network graph, then detection and descriptor head in numpy), "
            "same photos, same run: "
            + ", ".join(
                f"{s['speedup']}x at {s['max_image_size']} px with {s['threads']} at once"
                for s in speedups
            )
            + ".",
        ]
    lines += [
        "",
        "## End to end: recognize(photo) through both services (95 real photos indexed)",
        "",
        "| backend | concurrent clients | requests | p50 ms | p95 ms | photos/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["end_to_end"]:
        lines.append(
            f"| {row.get('backend', 'sift')} | {row['clients']} | {row['requests']} | "
            f"{row['p50_ms']} | {row['p95_ms']} | {row['throughput_per_s']} |"
        )
    lines += [
        "",
        "Reproduce: `make bench` (writes bench/results/bench.json and this file; "
        "`make bench-large` adds bench/results/large.json).",
        "",
    ]
    path.write_text("\n".join(lines))


def rewrite() -> None:
    """REPORT.md from every result file there is, and the figures README.md and docs/ show
    (bench/figures.py)."""
    from bench import figures

    figures.write()
    write_all(RESULTS / "REPORT.md")


def write_all(path: Path) -> None:
    """The report of every result file there is (bench.json holds the main run) at ``path``."""
    bench = RESULTS / "bench.json"
    if not bench.exists():
        return
    report = json.loads(bench.read_text())
    for key in ("large", "ingest"):
        source = RESULTS / f"{key}.json"
        if source.exists():
            report[key] = json.loads(source.read_text())
    write_report(report, path)
