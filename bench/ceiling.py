"""`make quality-ceiling`: how far the features go when nothing is approximated.

Every photo of ../shared/data/landmarks is matched exactly against every other photo (all
ordered pairs: the service's exact mutual matching and its verification, no Annoy, no
shortlist), and leave-one-out top-1, the easy+medium and hard groups, open-set false
accepts (distractors and left-out landmarks, as `landmark eval` counts them) and mAP
(every other photo ranked by inliers) are printed for a range of inlier thresholds.
What this cannot reach, no search setting can: docs/quality.md quotes it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from extractor_service.backends import NAMES, create_backend
from extractor_service.extractor import FeatureExtractor, Limits
from landmark_client.evaluation import average_precision
from landmark_client.gallery import scan
from search_service.search.exact_matches import mutual_matches
from search_service.search.search_params import SearchParams
from search_service.search.verify import Frames, verify

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "landmarks").resolve()


def pair_inliers(features: dict, params: SearchParams, threads: int) -> dict:
    """(query id, database id) → inliers, for every ordered pair."""
    ids = sorted(features)

    def row(a: str) -> dict[str, int]:
        out = {}
        for b in ids:
            if a == b:
                continue
            fa, fb = features[a], features[b]
            q, d = mutual_matches(fa.descriptors, fb.descriptors, params.ratio, params.max_distance)
            frames = Frames(fa.image_size, fb.image_size, len(fa))
            result = verify(fa.locations[q], fb.locations[d], frames, params.verify)
            out[b] = result.inliers
        return out

    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(ids, pool.map(row, ids), strict=True))


def report(inliers: dict, labels: dict, groups: dict, distractor: str, thresholds) -> list[dict]:
    counts = Counter(labels.values())
    landmark = [a for a in inliers if labels[a] != distractor]
    rows = []
    for t in thresholds:
        right, false_accepts = {}, 0
        for a, scores in inliers.items():
            best = max(scores, key=lambda b: (scores[b], b))
            accepted = scores[best] >= t
            if labels[a] == distractor:
                false_accepts += accepted
                continue
            right[a] = accepted and labels[best] == labels[a]
            others = [s for b, s in scores.items() if labels[b] != labels[a]]
            false_accepts += max(others) >= t  # its landmark left out of the index
        group = {a: groups.get(a) or groups.get(labels[a]) for a in landmark}
        easy_medium = [right[a] for a in landmark if group[a] != "hard"]
        hard = [right[a] for a in landmark if group[a] == "hard"]
        rows.append(
            {
                "min_inliers": t,
                "top1": round(float(np.mean(list(right.values()))), 3),
                "easy_medium": round(float(np.mean(easy_medium)), 3),
                "hard": round(float(np.mean(hard)), 3) if hard else None,
                "false_accepts": false_accepts,
                "negatives": len(inliers),  # distractors + landmarks left out
            }
        )
    ranked = {
        a: [labels[b] for b in sorted(inliers[a], key=lambda b: -inliers[a][b])] for a in landmark
    }
    m = np.mean([average_precision(labels[a], ranked[a], counts[labels[a]] - 1) for a in landmark])
    for r in rows:
        r["map_by_inliers"] = round(float(m), 3)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(DATA))
    ap.add_argument("--groups", default=str(ROOT / "bench" / "landmark_groups.json"))
    ap.add_argument("--distractor", default="distractor")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="sift", choices=NAMES, help="feature backend (sift)")
    ap.add_argument("--save", help="also write the pair table (JSON) here")
    args = ap.parse_args()
    images = scan(args.folder)
    extractor = FeatureExtractor(create_backend(args.backend), Limits())
    features = {g.image_id: extractor.extract(g.path.read_bytes()).features for g in images}
    labels = {g.image_id: g.label for g in images}
    groups = json.loads(Path(args.groups).read_text())
    inliers = pair_inliers(features, SearchParams(), args.threads)
    if args.save:
        Path(args.save).write_text(json.dumps({"inliers": inliers, "labels": labels}))
    rows = report(inliers, labels, groups, args.distractor, range(5, 17))
    print(f"{len(images)} photos, {len(images) * (len(images) - 1)} ordered pairs matched exactly")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
