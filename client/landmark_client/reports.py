"""What the `landmark` command prints: search results as JSON, evaluation reports as text."""

from __future__ import annotations

from .types import SearchResult


def result_json(result: SearchResult) -> dict:
    return {
        "match": result.match,
        "label": result.label,
        "min_inliers": result.min_inliers,
        "candidates": [
            {
                "image_id": m.image_id,
                "label": m.label,
                "inliers": m.inliers,
                "votes": m.votes,
                "putative_matches": m.putative_matches,
            }
            for m in result.candidates
        ],
        "timing_ms": result.timing.__dict__,
    }


def evaluation_text(report: dict, folder: str) -> str:
    """The report of ``landmark eval`` for a person to read."""
    lines = [f"leave-one-out over {folder}: {report['queries']} landmark queries"]
    lines.append(
        f"  top-1 {report['top1']:.3f} (averaged per landmark {report['top1_per_landmark']:.3f})"
        f"   mAP {report['map']:.3f}   no match {report['no_match']}   wrong {report['wrong']}"
    )
    for name, g in report["groups"].items():
        lines.append(f"  group {name:<8} top-1 {g['top1']:.3f} over {g['queries']} queries")
    o = report["open_set"]
    lines.append(
        f"  open set: distractors accepted {report['false_accepts']} of "
        f"{report['distractor_queries']}; left-out landmarks accepted "
        f"{o['left_out_false_accepts']} of {o['left_out_queries']}; false-accept rate "
        f"{o['false_accept_rate']:.3f}, true-accept rate {o['true_accept_rate']:.3f}"
    )
    h = report["half_protocol"]
    lines.append(
        f"  half protocol (half indexed, half queried): top-1 {h['top1']:.3f} over "
        f"{h['queries']} queries, mAP {h['map']:.3f}"
    )
    lines.append(
        f"  search latency p50 {report['latency_ms_p50']:.1f} ms, "
        f"p95 {report['latency_ms_p95']:.1f} ms"
    )
    lines.append(f"\n  {'landmark':<28} {'n':>3} {'top-1':>6} {'mAP':>6} {'no match':>8}")
    for label, row in report["per_landmark"].items():
        lines.append(
            f"  {label:<28} {row['queries']:>3} {row['top1']:>6.2f} {row['map']:>6.2f} "
            f"{row['no_match']:>8}"
        )
    for f in report.get("failed", []):
        lines.append(f"  left out: {f['image_id']}: {f['reason']}")
    return "\n".join(lines)
