"""The IVF-PQ first stage bench/shortlist.py measures beside the aggregated one: a query
descriptor's votes go to the images of its nearest rows, estimated from their codes."""

import numpy as np

from bench.ivfpq import IvfPq, K
from search_service.index import codebook


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_a_perturbed_image_votes_for_itself_once_per_query_descriptor():
    rng = np.random.default_rng(0)
    images, per_image, d = 40, 300, 32
    rows = unit(rng.standard_normal((images * per_image, d)))
    row_image = np.repeat(np.arange(images), per_image)
    words = codebook.fit(rows, 64)
    pq = IvfPq(rows, row_image, words)
    assert pq.codes.shape == (len(rows), 16) and pq.codes.dtype == np.uint8
    query = unit(rows[row_image == 7][:100] + 0.02 * rng.standard_normal((100, d)))
    votes = pq.votes(query, images)
    assert votes.argmax() == 7 and votes[7] >= 90  # its own rows are nearly every nearest
    assert votes.max() <= len(query)  # one vote per query descriptor and image
    assert votes.sum() <= K * len(query)
