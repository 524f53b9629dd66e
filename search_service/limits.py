"""What one request may ask of the search side, checked before any work is done."""

from __future__ import annotations

from dataclasses import dataclass

from landmark.wire import Features

from .errors import FeatureMismatch, InvalidRequest

MAX_ID_LENGTH = 1024


@dataclass(frozen=True)
class RequestLimits:
    max_top_k: int = 1000  # also bounds the shortlist (verification work per query)
    max_query_features: int = 10_000
    max_add_features: int = 1_000_000  # descriptors in one add request


def check_search_args(
    lim: RequestLimits, n_features: int, top_k: int, shortlist_size: int, min_inliers: int
) -> None:
    if not 1 <= top_k <= lim.max_top_k:
        raise InvalidRequest(f"top_k must be between 1 and {lim.max_top_k}, got {top_k}")
    if shortlist_size < 0 or min_inliers < 0:
        raise InvalidRequest("shortlist and min_inliers must not be negative (0 = default)")
    if shortlist_size > lim.max_top_k:
        raise InvalidRequest(f"shortlist must be at most {lim.max_top_k}, got {shortlist_size}")
    check_query_size(lim, n_features)


def check_query_size(lim: RequestLimits, n_features: int) -> None:
    if n_features > lim.max_query_features:
        raise InvalidRequest(
            f"the query has {n_features} features, above this service's limit of "
            f"{lim.max_query_features}: extract fewer (max_features)"
        )


def check_id(image_id: str) -> None:
    if not image_id or len(image_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"image_id must be 1-{MAX_ID_LENGTH} characters, got {image_id!r:.60}")


def check_add(
    lim: RequestLimits, entries: list[tuple[str, str, dict[str, str], Features]]
) -> tuple[str, int]:
    """Check an add request's ids, size and feature kind; returns (backend, dimension)."""
    ids = [e[0] for e in entries]
    for image_id in ids:
        check_id(image_id)
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise InvalidRequest(f"image ids repeat within the request: {dup}")
    total = sum(len(f) for _, _, _, f in entries)
    if total > lim.max_add_features:
        raise InvalidRequest(
            f"the request adds {total} descriptors, above this service's limit of "
            f"{lim.max_add_features} per request: send the images in smaller batches"
        )
    kinds = {(f.backend, f.dimension) for _, _, _, f in entries}
    if len(kinds) > 1:
        raise FeatureMismatch(f"one request mixes feature kinds {sorted(kinds)}")
    return kinds.pop()
