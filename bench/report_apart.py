"""REPORT.md's sections for the runs made apart (`make bench-large`, `make bench-ingest`)
and for the comparison of the search path with the previous one, measured in each run."""

from __future__ import annotations


def machine_of(run: dict) -> str:
    m = run.get("machine") or {}
    return f"{m.get('cpu', 'an unnamed machine')}, {m.get('cores', '?')} cores"


def lookups_section(report: dict) -> list[str]:
    """The default search beside the previous path (every query descriptor looking up
    neighbours), on the same index in the same run, at every size measured."""
    runs = [s for s in report["search"] if "every_lookup" in s]
    runs += [r for r in report.get("large", {}).get("runs", []) if "every_lookup" in r]
    if not runs:
        return []
    lines = [
        "",
        "## The strongest query descriptors look up, all are matched",
        "",
        "The default search (`lookup_features`: only the strongest query descriptors look up "
        "neighbours; exact matching and verification use all of them) beside the previous "
        "path, where every query descriptor looked up, on the same index in the same run.",
        "",
        "| images | padding | top-1 every / default | p50 ms every / default | p95 ms every / "
        "default | neighbours ms every / default | p50 ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in runs:
        e, d = s["every_lookup"], s["in_process"]
        size = s.get("images", s["size"])
        lines.append(
            f"| {size:,} | {s.get('padding', 'gaussian')} | {e['top1']:.3f} / {d['top1']:.3f} | "
            f"{e['p50_ms']} / {d['p50_ms']} | {e['p95_ms']} / {d['p95_ms']} | "
            f"{e['neighbours_ms_p50']} / {d['neighbours_ms_p50']} | "
            f"{d['p50_ms'] / e['p50_ms']:.2f} |"
        )
    return lines


def large_section(large: dict | None) -> list[str]:
    if not large:
        return []
    lines = [
        "",
        "## One node at scale (`make bench-large`)",
        "",
        f"Run {large['date']} on {machine_of(large)}, realistic padding. Built as a node ingests: "
        "adds of 1,000 generated images, each followed by the merges due, then the merges "
        "of an idle period; segments hold at most `max_segment_rows` descriptors. Peak RSS "
        "covers the build and the searches (the bench holds one batch of features at most).",
        "",
        "| images | descriptors | words | segments (M rows) | build s (of it merging) | "
        "bytes on disk | bytes/descr in memory / on disk | top-1 | shortlist recall / held | "
        "in-process p50 / p95 ms | first stage | matching | gRPC p50 / p95 ms | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in large["runs"]:
        i, g = r["in_process"], r["grpc"]
        segments = ", ".join(f"{n / 1e6:.1f}" for n in r["segments"])
        short = r.get("shortlist")
        recall = f"{short['recall']} / {short['held']}" if short else "-"
        lines.append(
            f"| {r['images']:,} | {r['descriptors']:,} | {_count(r.get('words'))} | {segments} | "
            f"{r['build_s']} ({r['merge_s']}) | {r['bytes_on_disk'] / 2**30:.1f} GiB | "
            f"{r.get('memory_bytes_per_descriptor', '-')} / {r['bytes_per_descriptor']} | "
            f"{i['top1']:.3f} | {recall} | {i['p50_ms']} / {i['p95_ms']} | "
            f"{i['neighbours_ms_p50']} | {i['matching_ms_p50']} | {g['p50_ms']} / "
            f"{g['p95_ms']} | {r['peak_rss_mib']} |"
        )
    return lines


def ingest_section(ingest: dict | None) -> list[str]:
    if not ingest:
        return []
    lines = [
        "",
        "## Feeding the service (`make bench-ingest`)",
        "",
    ]
    if ingest.get("throughput"):
        run = ingest.get("throughput_run", {})
        lines += [
            f"Run on {machine_of(run)}, {run.get('date', 'at an unrecorded time')}.",
            "",
            "Photos/s from a folder of the real photos (repeated under new ids) to a searchable "
            "index, through `index_folder`, beside the photos/s the same extractor processes "
            "sustain driven directly with a saturating load, in the same run. All processes "
            "share the machine's cores.",
            "",
            "| backend | extractor processes | photos | direct photos/s | ingest photos/s | "
            "ratio | photos per process |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in ingest["throughput"]:
            shares = " / ".join(str(n) for n in r["described"].values())
            lines.append(
                f"| {r['backend']} | {r['processes']} | {r['photos']} | "
                f"{r['direct_photos_per_s']} | {r['ingest_photos_per_s']} | {r['ratio']:.2f} | "
                f"{shares} |"
            )
    m = ingest.get("under_merge")
    if m:
        lines += [
            "",
            f"Run on {machine_of(m.get('run', {}))}, {m.get('run', {}).get('date', '')}. "
            f"Writes while a merge runs: one search process, {m['rows_before']:,} rows; the "
            f"merge writes {m['merge_live_rows']:,} live rows in {m['merge_s']} s. Small adds "
            "(1 photo), bulk adds (20 photos, a segment each) and searches (real photos) run "
            "throughout; the largest growing buffer seen while merging: "
            f"{m['largest_buffer_while_merging']:,} descriptors.",
            "",
            "| phase | small add p50 / p99 ms | bulk add p50 / p99 ms | search p50 / p99 ms | "
            "segments (mean / max) |",
            "|---|---|---|---|---|",
        ]
        for phase in ("idle", "merging_first_30s", "merging"):
            p = m.get(phase)
            if not p:
                continue
            cells = [f"{p[k]['p50_ms']} / {p[k]['p99_ms']}" for k in ("small", "bulk", "search")]
            seg = p.get("segments", {})
            cells.append(f"{seg.get('mean', '')} / {seg.get('max', '')}")
            lines.append(f"| {phase.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return lines


def first_stage_section(report: dict) -> list[str]:
    """The shortlist by words beside the shortlist by votes (today's first stage without
    words), on the same images in the same run."""
    rows = [s for s in report["search"] if "votes" in s]
    if not rows:
        return []
    lines = [
        "",
        "## First stage: words beside votes (same images, same run)",
        "",
        "Recall: the share of queries whose shortlist holds a photo of their landmark; held: "
        "the share of their landmark's photos it holds (at most its length). Memory and disk "
        "are bytes per stored descriptor; the words' share of the memory is a fixed cost "
        "(their vectors), the same at any size.",
        "",
        "| images | padding | first stage | words | shortlist recall | held | top-1 | p50 ms | "
        "memory B (of it words) | disk B | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        for name, r in (("votes", s["votes"]), ("words", s)):
            sl, i = r["shortlist"], r["in_process"]
            words = r.get("codebook_bytes", 0) / max(r["descriptors"], 1)
            lines.append(
                f"| {s['size']:,} | {s['padding']} | {name} | {_count(r.get('words'))} | "
                f"{sl['recall']:.3f} | {sl['held']:.3f} | {i['top1']:.3f} | {i['p50_ms']} | "
                f"{r['memory_bytes_per_descriptor']} ({words:.1f}) | "
                f"{r['bytes_per_descriptor']} | {r['build_s']} |"
            )
    return lines


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"
