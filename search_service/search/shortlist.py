"""The aggregated shortlist, a search's first step over sealed segments: the query's
descriptors are aggregated over the codebook like a stored image's (inverted.aggregate),
and each stored image that shares words with it is scored by the selective match kernel
(ASMK*): per shared word, the similarity u = 1 - 2 h / D of the two signatures (h their
Hamming distance), counted as u ** ALPHA when above THRESHOLD; the sum is normalised by
the square roots of both word counts (a stored image scores 1 against itself)."""

from __future__ import annotations

import numpy as np

from ..index.codebook import Codebook
from ..index.inverted import InvertedFile, aggregate

ALPHA = 3.0
THRESHOLD = 0.0  # at least 0: a word whose signatures disagree counts nothing


class QueryWords:
    """A query aggregated over a codebook, once for all the segments it scores."""

    def __init__(self, descriptors: np.ndarray, codebook: Codebook, multiple: int = 1) -> None:
        self.dimension = codebook.dimension
        self.codebook_version = codebook.version
        n = len(descriptors)
        words = codebook.nearest(descriptors, multiple) if n else np.zeros((0, multiple))
        x = np.repeat(np.asarray(descriptors, np.float32), multiple, axis=0)
        self.words, self.bits = aggregate(x, words.reshape(-1), codebook)

    def scores(self, inverted: InvertedFile) -> np.ndarray:
        """Per image of the segment: its kernel score against the query (0 when it shares
        no word)."""
        if inverted.codebook_version != self.codebook_version:
            raise ValueError("the segment's inverted file was built with another codebook")
        images = len(inverted.image_words)
        lo = np.asarray(inverted.word_starts[self.words])
        counts = np.asarray(inverted.word_starts[self.words + 1]) - lo
        total = int(counts.sum())
        if total == 0 or images == 0:
            return np.zeros(images, np.float64)
        # the entries of every query word, one after the other
        first = np.cumsum(counts) - counts
        entry = np.arange(total) - np.repeat(first - lo, counts)
        which = np.repeat(np.arange(len(self.words)), counts)
        bits = np.asarray(inverted.entry_bits[entry]) ^ self.bits[which]
        hamming = np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
        u = 1.0 - 2.0 * hamming / self.dimension
        kernel = np.where(u > THRESHOLD, u, 0.0) ** ALPHA
        image = np.asarray(inverted.entry_image[entry])
        score = np.bincount(image, weights=kernel, minlength=images)
        norm = np.sqrt(np.maximum(np.asarray(inverted.image_words, np.float64), 1.0))
        return score / norm / np.sqrt(max(len(self.words), 1))
