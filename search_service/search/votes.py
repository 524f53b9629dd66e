"""The shortlist, a search's second step: the images its words scored best, and the
best-voted of the rest (per image, the number of distinct query keypoints with a neighbour
in it); they are matched exactly and verified."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .hits import Hits, WordChoice


def vote(hits: Hits, num_images: int) -> np.ndarray:
    """Per database image: distinct query keypoints with at least one hit in it."""
    if hits.query.size == 0:
        return np.zeros(num_images, np.int64)
    pair = hits.image.astype(np.int64) * (int(hits.query.max()) + 1) + hits.query
    return np.bincount(hits.image[np.unique(pair, return_index=True)[1]], minlength=num_images)


def shortlist(
    votes: np.ndarray, size: int, min_votes: int, name_of: Callable[[int], str]
) -> np.ndarray:
    """The ``size`` best-voted images with at least ``min_votes`` votes, best first. Equal
    votes are ordered by ``name_of(image)`` (the image id), so that the choice does not
    depend on where images sit in the index (one index or several shards)."""
    if size <= 0 or votes.size == 0:
        return np.zeros(0, np.int64)
    pool = np.arange(votes.size)
    if votes.size > size:  # only images at or above the size-th best vote can be chosen
        cutoff = np.partition(votes, votes.size - size)[votes.size - size]
        pool = np.nonzero(votes >= max(cutoff, min_votes))[0]
    order = np.array(sorted(pool.tolist(), key=lambda i: (-votes[i], name_of(i))), np.int64)
    order = order[:size]
    return order[votes[order] >= min_votes]


def combine(
    words: WordChoice,
    hits: Hits,
    images: int,
    size: int,
    min_votes: int,
    image_id: Callable[[int], str],
) -> tuple[np.ndarray, np.ndarray]:
    """The shortlist: the ``size`` best of ``words`` (by score; ties by image id), then up to
    ``size`` images by the votes of ``hits`` (votes.shortlist). Returns their image numbers
    and, per image number, its votes: hits counted, or the query words it shares."""
    order = sorted(
        range(len(words.image)), key=lambda j: (-words.score[j], image_id(words.image[j]))
    )
    chosen = words.image[np.array(order[:size], np.int64)]
    votes = vote(hits, images)
    shared = np.zeros(images, np.int64)
    shared[words.image] = words.shared
    rest = shortlist(votes, size, min_votes, image_id)
    return np.concatenate([chosen, rest]), np.where(votes > 0, votes, shared)
