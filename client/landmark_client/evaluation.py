"""Leave-one-out evaluation metrics: top-1, mAP, no-match count, false accepts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QueryOutcome:
    image_id: str
    label: str
    predicted: str | None  # None = "no match"
    inliers: int
    ranked_labels: list[str]  # labels of the verified candidates, best first
    latency_ms: float


def average_precision(label: str, ranked_labels: list[str], relevant: int) -> float:
    """AP of a ranked list against ``relevant`` relevant items (missing ones count 0)."""
    if relevant <= 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, got in enumerate(ranked_labels, start=1):
        if got == label:
            hits += 1
            total += hits / rank
    return total / relevant


def summarize(outcomes: list[QueryOutcome], counts: dict[str, int], distractor_label: str) -> dict:
    """Figures over landmark queries; distractor queries count only as false accepts.

    ``counts`` maps label → images of that label in the index (the query included)."""
    landmark = [o for o in outcomes if o.label != distractor_label]
    distractors = [o for o in outcomes if o.label == distractor_label]
    per: dict[str, list[QueryOutcome]] = defaultdict(list)
    for o in landmark:
        per[o.label].append(o)
    aps = {
        o.image_id: average_precision(o.label, o.ranked_labels, counts[o.label] - 1)
        for o in landmark
    }
    table = {
        label: {
            "queries": len(items),
            "top1": float(np.mean([o.predicted == label for o in items])),
            "map": float(np.mean([aps[o.image_id] for o in items])),
            "no_match": sum(o.predicted is None for o in items),
        }
        for label, items in sorted(per.items())
    }
    latencies = [o.latency_ms for o in outcomes]
    return {
        "queries": len(landmark),
        "top1": float(np.mean([o.predicted == o.label for o in landmark])) if landmark else 0.0,
        "top1_per_landmark": float(np.mean([v["top1"] for v in table.values()])) if table else 0.0,
        "map": float(np.mean(list(aps.values()))) if aps else 0.0,
        "no_match": sum(o.predicted is None for o in landmark),
        "wrong": sum(o.predicted not in (None, o.label) for o in landmark),
        "distractor_queries": len(distractors),
        "false_accepts": sum(o.predicted is not None for o in distractors),
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
        "per_landmark": table,
        "misses": [
            {
                "image_id": o.image_id,
                "label": o.label,
                "predicted": o.predicted,
                "inliers": o.inliers,
            }
            for o in landmark
            if o.predicted != o.label
        ],
    }
