"""The measured figures README.md and docs/ show, generated from the committed result files
in bench/results, never typed: each block sits between ``<!-- figures:NAME -->`` and
``<!-- /figures:NAME -->``. Every bench run rewrites them (bench/report.py), `make figures`
does so by hand, and tests/unit/test_figures.py fails when one is stale."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from bench.common import RESULTS, ROOT
from bench.report_apart import first_stage_section, ingest_section, large_section, machine_of


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def _run(result: dict) -> str:
    when = f" on {result['date']}" if result.get("date") else ""
    return machine_of(result) + when


def _tables(lines: list[str]) -> list[str]:
    """A REPORT.md section without its heading."""
    return [line for line in lines if not line.startswith("## ")][1:]


def search_block() -> list[str]:
    bench, large = _load("bench.json"), _load("large.json")
    lines = [
        f"`make bench`, {_run(bench)} (bench/results/bench.json; `make bench-large` for "
        "one node at 200,000 images, bench/results/large.json). p50 / p95 ms per query, in "
        "the search process (`make bench`: 3 passes over the queries, the default and the "
        "previous path searched in turn query by query, so that both meet the machine alike) "
        "and through gRPC; the previous path had every query descriptor look up.",
        "",
        "| images | padding | top-1 | in-process p50 / p95 | gRPC p50 / p95 | previous path "
        "p50 | build s | bytes per descriptor in memory / on disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in bench.get("search", []):
        i, g = s["in_process"], s["grpc"]
        every = s.get("every_lookup", {}).get("p50_ms", "-")
        lines.append(
            f"| {s['size']:,} | {s['padding']} | {i['top1']:.3f} | {i['p50_ms']} / "
            f"{i['p95_ms']} | {g['p50_ms']} / {g['p95_ms']} | {every} | {s['build_s']} | "
            f"{s.get('memory_bytes_per_descriptor', '-')} / {s['bytes_per_descriptor']} |"
        )
    for r in large.get("runs", []):
        i, g = r["in_process"], r["grpc"]
        every = r.get("every_lookup", {}).get("p50_ms", "-")
        lines.append(
            f"| {r['images']:,} | real | {i['top1']:.3f} | {i['p50_ms']} / {i['p95_ms']} | "
            f"{g['p50_ms']} / {g['p95_ms']} | {every} | {r['build_s']} | "
            f"{r.get('memory_bytes_per_descriptor', '-')} / {r['bytes_per_descriptor']} |"
        )
    return lines


def extraction_block() -> list[str]:
    bench = _load("bench.json")
    rates: dict[str, dict[int, float]] = {}
    for e in bench.get("extraction", []):
        if e.get("threads") == 2:
            rates.setdefault(e["backend"], {})[e["max_image_size"]] = e["images_per_s"]
    ends = {(e["backend"], e["clients"]): e for e in bench.get("end_to_end", []) if "p50_ms" in e}
    lines = [
        f"`make bench`, {_run(bench)} (bench/results/bench.json): photos/s with two "
        "extractions at once, and `recognize` (extract, then search 100 images) end to end.",
        "",
        "| backend | photos/s at 512 / 768 / 1024 px | recognize p50, 1 client | photos/s, "
        "16 clients |",
        "|---|---|---|---|",
    ]
    for backend, by_size in rates.items():
        sizes = " / ".join(str(by_size.get(px, "-")) for px in (512, 768, 1024))
        one, many = ends.get((backend, 1)), ends.get((backend, 16))
        p50 = f"{one['p50_ms'] / 1e3:.2f} s" if one else ""
        busy = many["throughput_per_s"] if many else ""
        lines.append(f"| {backend} | {sizes} | {p50} | {busy} |")
    return lines


def ingest_block() -> list[str]:
    return ["`make bench-ingest` (bench/results/ingest.json).", ""] + _tables(
        ingest_section(_load("ingest.json"))
    )[1:]


def merge_ratio_block() -> list[str]:
    m = _load("ingest.json").get("under_merge")
    if not m:
        return []
    idle, merging = m["idle"], m["merging"]
    ratio = merging["search"]["p50_ms"] / idle["search"]["p50_ms"]
    adds = max(merging["small"]["p99_ms"], merging["bulk"]["p99_ms"])
    return [
        f"While the merge ran, searches took {ratio:.2f} times their p50 without it, adds "
        f"answered within {adds:,.0f} ms at p99 (bulk adds included), and the merge of "
        f"{m['merge_live_rows']:,} live rows took {m['merge_s']} s."
    ]


def node_block() -> list[str]:
    bench, large = _load("bench.json"), _load("large.json")
    rows = [
        "| figure | measured | source |",
        "|---|---|---|",
    ]
    for s in bench.get("search", []):
        if s["size"] == 10_000:
            rows.append(
                f"| search p50 at 10 M descriptors, {s['padding']} padding (one shard, "
                f"{bench['machine']['cores']} cores) | {s['in_process']['p50_ms']} ms "
                "in-process | `make bench` |"
            )
    for r in large.get("runs", []):
        i = r["in_process"]
        rows.append(
            f"| one node at {r['images']:,} photos ({r['descriptors'] / 1e6:.0f} M descriptors) "
            f"| {r['bytes_on_disk'] / 1e9:.1f} GB on disk, top-1 {i['top1']:.3f}, search p50 "
            f"{i['p50_ms']} ms / p95 {i['p95_ms']} ms, built in {r['build_s'] / 60:.0f} min, "
            f"peak resident {r['peak_rss_mib'] / 1024:.1f} GiB | `make bench-large` |"
        )
    for e in bench.get("extraction", []):
        if e.get("threads") == 2 and e.get("max_image_size") == 1024:
            rows.append(
                f"| extractor `{e['backend']}` at 1024 px, two at once | {e['images_per_s']} "
                "photos/s | `make bench` |"
            )
    return [f"Measured on {_run(bench)} (bench/results):", "", *rows]


def _same(difference: dict | None) -> str:
    if difference is None:
        return "another size (quality: below)"
    if difference["same_keypoint_sets"] and difference["largest_descriptor_difference"] <= 1e-5:
        return "yes"
    return (
        f"no: keypoints moved up to {difference['largest_keypoint_move_px']:g} px, "
        f"descriptors up to {difference['largest_descriptor_difference']:g}"
    )


def cpu_options_block() -> list[str]:
    run = _load("cpu_options.json")
    lines = [
        f"`make cpu-options`, {_run(run)}, {run.get('photos', '?')} real photos "
        "(bench/results/cpu_options.json); features compared with the default's on 4 of them.",
        "",
        "| option | px | calls at once | threads per call | photos/s | x previous path | "
        "features as the default's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in run.get("rows", []):
        lines.append(
            f"| {r['option']} | {r['max_image_size']} | {r['calls_at_once']} | "
            f"{r['ort_threads_per_call']} | {r['photos_per_s']} | {r['against_previous_path']} | "
            f"{_same(r['features_against_default'])} |"
        )
    return lines


def eval_block() -> list[str]:
    run = _load("eval.json")
    if not run:
        return []
    r, o, h = run["report"], run["report"]["open_set"], run["report"]["half_protocol"]
    g = r["groups"]
    negatives = r["distractor_queries"] + o["left_out_queries"]
    wrong_answers = round(o["false_accept_rate"] * negatives)
    right = round(r["top1"] * r["queries"])
    return [
        f"`{run['command']}`, {_run(run)} (bench/results/eval.json; {run['runs']} runs of the "
        "same code gave the same figures, latency aside):",
        "",
        "| backend | top-1 | per landmark | easy / medium / hard | mAP | wrong answers | "
        "distractors accepted | open-set false accepts | half protocol top-1 / mAP |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| aliked (the default) | {r['top1']:.3f} ({right} of {r['queries']}) | "
        f"{r['top1_per_landmark']:.3f} | {g['easy']['top1']:.3f} / {g['medium']['top1']:.3f} / "
        f"{g['hard']['top1']:.3f} | {r['map']:.3f} | {r['wrong']} | {r['false_accepts']} of "
        f"{r['distractor_queries']} | {o['false_accept_rate']:.1%} ({wrong_answers} of "
        f"{negatives}) | {h['top1']:.3f} / {h['map']:.3f} |",
    ]


def shortlist_block() -> list[str]:
    run = _load("shortlist.json")
    if not run:
        return []
    v, q = run["votes"], run["ivf_pq"]
    rows = [
        ("neighbour votes (today)", v),
        *(
            (f"aggregated, {a['words']:,} words found by {how}", a)
            for how, a in (("Annoy", run["aggregated"]["annoy"]),
                           ("a full product", run["aggregated"]["exact"]))
        ),
        (f"IVF-PQ votes, {q['bytes_per_code']}-byte codes, {q['probes']} probes", q),
    ]  # fmt: skip
    return [
        f"`{run['command']}`, {_run(run)} (bench/results/shortlist.json): {run['images']:,} "
        f"images, {run['descriptors']:,} descriptors, shortlists of {run['shortlist']}; "
        f"the codebook fitted in {run['codebook_s']} s.",
        "",
        "| first stage | queries with a right photo in the shortlist | right photos held | "
        "bytes in memory per descriptor | p50 ms | indexing s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {r['queries_with_a_right_photo']} | {r['right_photos_held']} | "
            f"{r['bytes_in_memory_per_descriptor']} | {r['p50_ms']} | {r.get('indexing_s', '-')} |"
            for name, r in rows
        ),
    ]


README, SCALING = ROOT / "README.md", ROOT / "docs" / "scaling.md"
DESIGN = ROOT / "docs" / "index-design.md"
QUALITY = ROOT / "docs" / "quality.md"


# each block: the files that show it, and what renders it
def first_stage_block() -> list[str]:
    bench = _load("bench.json")
    tables = _tables(first_stage_section(bench))[1:] if bench.get("search") else []
    return [f"`make bench`, {_run(bench)} (bench/results/bench.json).", "", *tables]


BLOCKS: dict[str, tuple[tuple[Path, ...], Callable[[], list[str]]]] = {
    "search": ((README,), search_block),
    "extraction": ((README,), extraction_block),
    "large": ((README,), lambda: _tables(large_section(_load("large.json")))[1:]),
    "ingest": ((README,), ingest_block),
    "merge": ((README,), merge_ratio_block),
    "node": ((SCALING,), node_block),
    "cpu-options": ((QUALITY,), cpu_options_block),
    "eval": ((README, QUALITY), eval_block),
    "shortlist": ((DESIGN,), shortlist_block),
    "first-stage": ((DESIGN,), first_stage_block),
}


def places() -> list[tuple[str, Path]]:
    """Every (block, file) that shows it."""
    return [(name, path) for name, (paths, _) in BLOCKS.items() for path in paths]


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- figures:{name} -->\n)(.*?)(<!-- /figures:{name} -->)", re.DOTALL)


def current(name: str, path: Path) -> str | None:
    found = _pattern(name).search(path.read_text())
    return found.group(2) if found else None


def rendered(name: str) -> str:
    return "\n".join(BLOCKS[name][1]()) + "\n"


def stale() -> list[tuple[str, Path]]:
    """The places whose text is not what the result files give (or that are missing)."""
    return [(name, path) for name, path in places() if current(name, path) != rendered(name)]


def write() -> None:
    for name, path in places():
        text, block = path.read_text(), rendered(name)
        new, n = _pattern(name).subn(lambda m, block=block: m.group(1) + block + m.group(3), text)
        if n != 1:
            raise SystemExit(f"{path.name}: no <!-- figures:{name} --> block to write into")
        path.write_text(new)


if __name__ == "__main__":
    write()
    print("figures written from bench/results into README.md and docs/")
