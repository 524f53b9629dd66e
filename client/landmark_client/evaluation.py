"""Evaluation over a labeled photo folder, through the services.

Protocols (all over one index holding every photo, distractors included):
  leave-one-out  each photo is queried against all the others (itself excluded);
  left-out       each landmark photo is queried with ALL photos of its landmark excluded:
                 the right answer is "no match" (open set: a place that is not indexed);
  half           half of each landmark's photos (sorted by id, first half) form the index,
                 the other half are the queries (the rest excluded).
Distractor photos (label ``distractor`` by default) are never a right answer; queried,
their right answer is "no match".
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from . import gallery as gallery_mod
from .client import LandmarkClient, SearchClient
from .errors import LandmarkError
from .gallery import DISTRACTOR_LABEL, GalleryImage
from .progress import NoProgress, ProgressBar
from .types import Features, ImageToAdd


@dataclass(frozen=True)
class QueryOutcome:
    image_id: str
    label: str
    predicted: str | None  # best accepted label; None = "no match"
    score: int  # inliers of the top-ranked candidate, accepted or not
    top_label: str | None  # label of the top-ranked candidate, accepted or not
    ranked_labels: list[str]  # every verified candidate, best first
    accepted_labels: list[str]  # the accepted ones only
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


def load_groups(path: str | Path | None) -> dict[str, str]:
    """JSON mapping a label or an image id to a group name (image ids win)."""
    return json.loads(Path(path).read_text()) if path else {}


def _group(o: QueryOutcome, groups: dict[str, str]) -> str | None:
    return groups.get(o.image_id) or groups.get(o.label)


def _top1(items: list[QueryOutcome]) -> float:
    return float(np.mean([o.predicted == o.label for o in items])) if items else 0.0


def summarize(
    outcomes: list[QueryOutcome],
    counts: dict[str, int],
    distractor: str,
    groups: dict[str, str] | None = None,
) -> dict:
    """Leave-one-out figures. ``counts``: label → indexed photos of it (query included)."""
    groups = groups or {}
    landmark = [o for o in outcomes if o.label != distractor]
    distractors = [o for o in outcomes if o.label == distractor]
    per: dict[str, list[QueryOutcome]] = defaultdict(list)
    for o in landmark:
        per[o.label].append(o)
    ap = {
        o.image_id: average_precision(o.label, o.ranked_labels, counts[o.label] - 1)
        for o in landmark
    }
    ap_acc = {
        o.image_id: average_precision(o.label, o.accepted_labels, counts[o.label] - 1)
        for o in landmark
    }
    table = {
        label: {
            "queries": len(items),
            "top1": _top1(items),
            "map": float(np.mean([ap[o.image_id] for o in items])),
            "no_match": sum(o.predicted is None for o in items),
            "group": _group(items[0], groups),
        }
        for label, items in sorted(per.items())
    }
    by_group: dict[str, list[QueryOutcome]] = defaultdict(list)
    for o in landmark:
        g = _group(o, groups)
        if g:
            by_group[g].append(o)
    latencies = [o.latency_ms for o in outcomes]
    return {
        "queries": len(landmark),
        "top1": _top1(landmark),
        "top1_per_landmark": float(np.mean([v["top1"] for v in table.values()])) if table else 0.0,
        "map": float(np.mean(list(ap.values()))) if ap else 0.0,
        "map_accepted": float(np.mean(list(ap_acc.values()))) if ap_acc else 0.0,
        "no_match": sum(o.predicted is None for o in landmark),
        "wrong": sum(o.predicted not in (None, o.label) for o in landmark),
        "distractor_queries": len(distractors),
        "false_accepts": sum(o.predicted is not None for o in distractors),
        "groups": {g: {"queries": len(v), "top1": _top1(v)} for g, v in sorted(by_group.items())},
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
        "per_landmark": table,
        "misses": [
            {"image_id": o.image_id, "label": o.label, "predicted": o.predicted, "inliers": o.score}
            for o in landmark
            if o.predicted != o.label
        ],
    }


def pr_curve(positives: list[QueryOutcome], negatives: list[QueryOutcome]) -> list[dict]:
    """Precision and recall of the answer as the inlier threshold moves.

    A positive query is right when its top candidate has its label; a negative query
    (not indexed) is never right. At threshold t an answer is given when score >= t."""
    scores = sorted({o.score for o in positives + negatives} | {1})
    rows = []
    for t in scores:
        given = [o for o in positives + negatives if o.score >= t]
        right = [o for o in positives if o.score >= t and o.top_label == o.label]
        rows.append(
            {
                "threshold": t,
                "precision": len(right) / len(given) if given else 1.0,
                "recall": len(right) / len(positives) if positives else 0.0,
                "false_accepts": sum(o.score >= t for o in negatives),
            }
        )
    return rows


def evaluate(
    folder: str | Path,
    client: LandmarkClient,
    distractor: str = DISTRACTOR_LABEL,
    groups: dict[str, str] | None = None,
    progress: Callable[[int, str], ProgressBar] | None = None,
) -> dict:
    """Extract every photo of a labeled ``folder``, index them in ``client``'s (empty)
    search service, and measure the protocols of ``evaluate_features``."""
    images = gallery_mod.scan(folder)
    bar: Callable[[int, str], ProgressBar] = progress or (lambda total, desc: NoProgress())
    features = {}
    failed: list[tuple[str, str]] = []  # photos left out of the evaluation, and why
    with bar(len(images), "extracting") as b:
        for item in client.extractor.extract_many(
            ((g.image_id, g.path) for g in images), timeout=max(60.0, 10.0 * len(images))
        ):
            if item.features is None:
                failed.append((item.request_id, str(item.error)))
            else:
                features[item.request_id] = item.features
            b.update(1)
    return evaluate_features(client.search, images, features, distractor, groups, progress, failed)


def evaluate_features(
    search: SearchClient,
    images: list[GalleryImage],
    features: dict[str, Features],
    distractor: str = DISTRACTOR_LABEL,
    groups: dict[str, str] | None = None,
    progress: Callable[[int, str], ProgressBar] | None = None,
    failed: list[tuple[str, str]] | None = None,
) -> dict:
    """Index ``images`` with their ``features`` (image id -> Features; photos without
    any are left out) in ``search``'s empty index, query them by the three protocols
    (module docstring) and report the figures."""
    bar: Callable[[int, str], ProgressBar] = progress or (lambda total, desc: NoProgress())
    failed = list(failed or [])
    entries = [ImageToAdd(g.image_id, g.label, features[g.image_id]) for g in images
               if g.image_id in features]  # fmt: skip
    failed += add_each_refused_alone(search, entries)
    wait_settled(search)
    refused = {i for i, _ in failed}
    images = [g for g in images if g.image_id not in refused and g.image_id in features]
    by_label: dict[str, list[str]] = defaultdict(list)
    for g in images:
        by_label[g.label].append(g.image_id)

    def query(g, exclude) -> QueryOutcome:  # noqa: ANN001
        start = time.perf_counter()
        r = search.search(features[g.image_id], top_k=100, exclude=exclude, include_rejected=True)
        latency = (time.perf_counter() - start) * 1e3
        top = r.candidates[0] if r.candidates else None
        return QueryOutcome(
            g.image_id,
            g.label,
            r.label,
            top.inliers if top else 0,
            top.label if top else None,
            [m.label for m in r.candidates],
            [m.label for m in r.accepted],
            latency,
        )

    landmark_photos = [g for g in images if g.label != distractor]
    half_index = {
        i
        for lab, ids in by_label.items()
        if lab != distractor
        for i in sorted(ids)[: (len(ids) + 1) // 2]
    }
    half_queries = [g for g in landmark_photos if g.image_id not in half_index]
    total = len(images) + len(landmark_photos) + len(half_queries)
    loo, left_out, half = [], [], []
    with bar(total, "querying") as b:
        for g in images:
            loo.append(query(g, [g.image_id]))
            b.update(1)
        for g in landmark_photos:
            left_out.append(query(g, by_label[g.label]))
            b.update(1)
        excluded_half = [g.image_id for g in half_queries]
        for g in half_queries:
            half.append(query(g, excluded_half))
            b.update(1)
    counts = {lab: len(ids) for lab, ids in by_label.items()}
    report = summarize(loo, counts, distractor, groups)
    distractor_q = [o for o in loo if o.label == distractor]
    negatives = distractor_q + left_out
    report["open_set"] = {
        "true_accept_rate": report["top1"],
        "left_out_queries": len(left_out),
        "left_out_false_accepts": sum(o.predicted is not None for o in left_out),
        "false_accept_rate": (
            sum(o.predicted is not None for o in negatives) / len(negatives) if negatives else 0.0
        ),
    }
    half_counts = {lab: sum(1 for i in ids if i in half_index) + 1 for lab, ids in by_label.items()}
    half_report = summarize(half, half_counts, distractor, groups)
    report["half_protocol"] = {
        k: half_report[k]
        for k in ("queries", "top1", "top1_per_landmark", "map", "no_match", "wrong", "groups")
    }
    report["pr_curve"] = pr_curve([o for o in loo if o.label != distractor], negatives)
    report["failed"] = [{"image_id": i, "reason": why} for i, why in failed]
    return report


SETTLE_SECONDS = 600.0  # the longest an evaluation waits for the index's background work
SETTLE_POLL = 0.2


def wait_settled(search: SearchClient, timeout: float = SETTLE_SECONDS) -> None:
    """Until the index has nothing left to do in the background (its buffer sealed, no
    merge running, due or waiting for writes to pause). Queried then, every search answers
    from the same segments, so two evaluations of the same photos give the same figures
    whenever their queries come."""
    deadline = time.monotonic() + timeout
    while not search.index_info().settled:
        if time.monotonic() > deadline:
            raise LandmarkError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the index at {search.address} still seals or merges after {timeout:.0f}s; "
                "evaluate when it has settled",
            )
        time.sleep(SETTLE_POLL)


def add_each_refused_alone(search, entries: list[ImageToAdd]) -> list[tuple[str, str]]:  # noqa: ANN001
    """Add ``entries``; when the search service refuses a batch's features, add them one
    by one so that only the refused photos are left out. Returns (image id, why) of those."""
    try:
        search.add_images(entries, on_conflict="replace")
        return []
    except LandmarkError as err:
        if err.code is not grpc.StatusCode.INVALID_ARGUMENT:
            raise
        if len(entries) == 1:
            why = f"the search service refused its features: {err.details}"
            return [(entries[0].image_id, why)]
    return [f for e in entries for f in add_each_refused_alone(search, [e])]
