"""The alternative first stage measured beside the aggregated shortlist: the stored rows
product-quantized behind an inverted file (IVF-PQ, Jégou et al.; the DELF paper's own
retrieval kept each descriptor as a short PQ code), and votes as today.

Each row goes to its nearest word of the same codebook; its residual (row minus word) is
cut into SUBSPACES pieces, each replaced by the number of its nearest of 256 centroids
(k-means on a sample of residual pieces): SUBSPACES bytes per row, plus the row's image.
A query descriptor visits the rows of its PROBES nearest words, estimates its distance to
each from per-piece tables (asymmetric distance), and keeps its K nearest; each image gets
a vote per query descriptor with a neighbour in it, like the Annoy lookup's votes.
"""

from __future__ import annotations

import numpy as np

from search_service.index.codebook import assign_exact

SUBSPACES = 16
CENTROIDS = 256
PROBES = 4
K = 10


def _kmeans(x: np.ndarray, k: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Euclidean Lloyd's k-means."""
    c = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(rounds):
        d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]
        near = d.argmin(1)
        sums = np.zeros_like(c)
        np.add.at(sums, near, x)
        n = np.bincount(near, minlength=k)
        c = np.where(n[:, None] > 0, sums / np.maximum(n, 1)[:, None], c)
    return c.astype(np.float32)


class IvfPq:
    def __init__(self, rows: np.ndarray, row_image: np.ndarray, centroids: np.ndarray) -> None:
        rng = np.random.default_rng(0)
        self.centroids = centroids
        words = assign_exact(rows, centroids)[:, 0]
        residual = rows - centroids[words]
        self.width = rows.shape[1] // SUBSPACES
        sample = residual[rng.choice(len(rows), min(len(rows), 100 * CENTROIDS), replace=False)]
        self.books = np.stack([
            _kmeans(sample[:, m * self.width : (m + 1) * self.width], CENTROIDS, 8, rng)
            for m in range(SUBSPACES)
        ])  # fmt: skip
        codes = np.empty((len(rows), SUBSPACES), np.uint8)
        for m, book in enumerate(self.books):
            piece = residual[:, m * self.width : (m + 1) * self.width]
            for lo in range(0, len(rows), 1 << 16):
                p = piece[lo : lo + (1 << 16)]
                d = (book * book).sum(1)[None] - 2 * p @ book.T
                codes[lo : lo + (1 << 16), m] = d.argmin(1)
        order = np.argsort(words, kind="stable")
        self.codes = codes[order]
        self.image = row_image[order].astype(np.int32)
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(words, minlength=len(centroids)))])

    def nbytes(self) -> int:
        return self.codes.nbytes + self.image.nbytes + self.starts.nbytes + self.books.nbytes

    def votes(self, queries: np.ndarray, images: int) -> np.ndarray:
        """Per image: query descriptors with one of their K nearest rows in it."""
        probes = assign_exact(queries, self.centroids, PROBES)  # [Q, P]
        q_of = np.repeat(np.arange(len(queries)), PROBES)
        word = probes.reshape(-1)
        residual = queries[q_of] - self.centroids[word]  # [Q*P, D]
        pieces = residual.reshape(len(word), SUBSPACES, self.width)
        # tables[pair, m, c]: squared distance of the pair's piece m to centroid c
        tables = (
            (pieces * pieces).sum(2)[:, :, None]
            - 2 * np.einsum("pmw,mcw->pmc", pieces, self.books)
            + (self.books * self.books).sum(2)[None]
        )
        lo, counts = self.starts[word], self.starts[word + 1] - self.starts[word]
        total = int(counts.sum())
        entry = np.arange(total) - np.repeat(np.cumsum(counts) - counts - lo, counts)
        pair = np.repeat(np.arange(len(word)), counts)
        codes = self.codes[entry].astype(np.int64)
        dist = tables[pair[:, None], np.arange(SUBSPACES)[None], codes].sum(1)
        query = q_of[pair]
        order = np.lexsort((dist, query))
        rank = np.arange(total) - np.repeat(
            np.searchsorted(query[order], np.arange(len(queries))),
            np.bincount(query, minlength=len(queries)),
        )
        keep = order[rank < K]
        pairs = np.unique(query[keep].astype(np.int64) * images + self.image[entry[keep]])
        return np.bincount(pairs % images, minlength=images)
