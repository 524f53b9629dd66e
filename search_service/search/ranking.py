"""Ranking, a search's last step: verified candidates first, by inliers; the others after
them by their mutual matches, then their votes.

With SearchParams.weigh_shared_inliers, an inlier counts for one landmark only: a query
keypoint that is an inlier of verified candidates of several landmarks (labels) shows
something they share, not what tells them apart (an overlay they all carry, a colonnade,
a standard window), and counts 1/L in each of the L. A candidate's inliers are scaled by
the mean weight of its inlier keypoints before the threshold is applied
(``distinct_evidence``). It is off by default: docs/quality.md has what it costs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..index.images import ImageMeta
from .verify import Checked


@dataclass(frozen=True)
class Candidate:
    image: ImageMeta
    inliers: int
    votes: int
    putative: int
    query_locations: np.ndarray | None = None
    database_locations: np.ndarray | None = None
    transform: np.ndarray | None = None


@dataclass(frozen=True)
class Timing:
    neighbours_ms: float = 0.0  # nearest database descriptors (a coordinator: the shards)
    matching_ms: float = 0.0  # votes, shortlist and exact mutual matching
    verify_ms: float = 0.0  # verification and ranking
    total_ms: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    candidates: list[Candidate]
    min_inliers: int
    timing: Timing
    verified: int = 0  # candidate images verified geometrically

    @property
    def best(self) -> Candidate | None:
        """The best candidate, if it reaches min_inliers (else "no match")."""
        if self.candidates and self.candidates[0].inliers >= self.min_inliers:
            return self.candidates[0]
        return None


def order_key(c: Candidate, min_inliers: int) -> tuple[int, int, int, int, str]:
    """Verified candidates first, by inliers; the rest by how many mutual matches they
    have (the similarity before verification), then by votes; ties by image id."""
    accepted = c.inliers >= min_inliers
    return (
        0 if accepted else 1,
        -c.inliers if accepted else 0,
        -c.putative,
        -c.votes,
        c.image.image_id,
    )


def distinct_evidence(
    checked: Sequence[Checked], images: Sequence[ImageMeta], min_inliers: int
) -> list[int]:
    """Each candidate's inliers, with the inlier keypoints it shares with verified
    candidates (at least ``min_inliers``) of other labels counted 1/L (module docstring)."""
    counts = [c.result.inliers for c in checked]
    verified = [i for i, c in enumerate(checked) if c.result.inliers >= min_inliers]
    labels = sorted({images[checked[i].putative.image].label for i in verified})
    if len(labels) < 2:
        return counts
    number = {label: n for n, label in enumerate(labels)}
    keypoints = [checked[i].putative.query[checked[i].result.mask] for i in verified]
    pairs = np.unique(
        np.concatenate(
            [
                kp.astype(np.int64) * len(labels) + number[images[checked[i].putative.image].label]
                for i, kp in zip(verified, keypoints, strict=True)
            ]
        )
    )
    spread = np.bincount(pairs // len(labels))  # labels each query keypoint is an inlier of
    for i, kp in zip(verified, keypoints, strict=True):
        weight = float(np.mean(1.0 / spread[kp])) if kp.size else 1.0
        counts[i] = int(np.floor(counts[i] * weight + 1e-9))
    return counts


def ranked(
    checked: Iterable[Checked],
    votes: np.ndarray,
    images: Sequence[ImageMeta],
    min_inliers: int,
    include_matches: bool = False,
    include_rejected: bool = False,
    *,
    weigh_shared: bool,
) -> list[Candidate]:
    """The verified shortlist as candidates, best first; those below ``min_inliers`` only
    with ``include_rejected``; inlier locations only with ``include_matches``;
    ``weigh_shared``: SearchParams.weigh_shared_inliers (the one default)."""
    checked = list(checked)
    counts = (
        distinct_evidence(checked, images, min_inliers)
        if weigh_shared
        else [c.result.inliers for c in checked]
    )
    found: list[Candidate] = []
    for c, inliers in zip(checked, counts, strict=True):
        result, put = c.result, c.putative
        if inliers < min_inliers and not include_rejected:
            continue
        found.append(
            Candidate(
                image=images[put.image],
                inliers=inliers,
                votes=int(votes[put.image]),
                putative=int(put.query.size),
                query_locations=c.src[result.mask] if include_matches else None,
                database_locations=c.dst[result.mask] if include_matches else None,
                transform=result.transform,
            )
        )
    found.sort(key=lambda c: order_key(c, min_inliers))
    return found
