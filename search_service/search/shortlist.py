"""The aggregated shortlist, a search's first step over sealed segments: the query's
descriptors are aggregated over the codebook like a stored image's (inverted.aggregate),
and each stored image that shares words with it is scored by the selective match kernel
(ASMK*): per shared word, the similarity u = 1 - 2 h / D of the two signatures (h their
Hamming distance), counted as u ** ALPHA when above THRESHOLD; the sum is normalised by
the square roots of both word counts (a stored image scores 1 against itself)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from landmark.wire import Features

from ..index.codebook import Codebook
from ..index.inverted import InvertedFile, aggregate
from ..index.view import View
from .hits import Hits, WordChoice
from .lookup import lookup_rows, nearest_hits
from .search_params import SearchParams

ALPHA = 3.0
THRESHOLD = 0.0  # at least 0: a word whose signatures disagree counts nothing
CHUNK_ENTRIES = 1 << 18  # inverted-file entries scored at once


class QueryWords:
    """A query aggregated over a codebook, once for all the segments it scores."""

    def __init__(self, descriptors: np.ndarray, codebook: Codebook, multiple: int = 1) -> None:
        self.dimension = codebook.dimension
        self.codebook_version = codebook.version
        n = len(descriptors)
        # by products with the words (codebook.assign): Annoy at any affordable search_k
        # misses the nearest word of many real descriptors, and the shortlist then misses
        # the hard pairs
        words = codebook.assign(descriptors, multiple) if n else np.zeros((0, multiple), np.int64)
        x = np.repeat(np.asarray(descriptors, np.float32), multiple, axis=0)
        self.words, self.bits = aggregate(x, words.reshape(-1), codebook)
        self._bits64 = _words64(self.bits)
        # the kernel of each Hamming distance h: u = 1 - 2 h / D, u ** ALPHA when above
        # THRESHOLD (looked up per entry instead of computed)
        u = 1.0 - 2.0 * np.arange(self.dimension + 1) / self.dimension
        kernel = np.where(u > THRESHOLD, u, 0.0) ** ALPHA
        # what an entry adds to its image's sum: its kernel, plus a power of two above the
        # query's words when positive, so that one sum per image gives both its score (the
        # remainder: each kernel is at most 1) and the words it shares (the multiples);
        # exact for D = 128, whose kernels are multiples of 2 ** -18
        self._shared = 2.0 ** np.ceil(np.log2(len(self.words) + 2))
        self._weight = kernel + self._shared * (kernel > 0)

    def scores(self, inverted: InvertedFile) -> np.ndarray:
        """Per image of the segment: its kernel score against the query (0 when it shares
        no word)."""
        return self.match(inverted)[0]

    def match(self, inverted: InvertedFile) -> tuple[np.ndarray, np.ndarray]:
        """Per image of the segment: its kernel score, and the query's words it shares
        with a positive kernel (what the shortlist shows as the image's votes)."""
        if inverted.codebook_version != self.codebook_version:
            raise ValueError("the segment's inverted file was built with another codebook")
        images = len(inverted.image_words)
        lo = np.asarray(inverted.word_starts[self.words])
        counts = np.asarray(inverted.word_starts[self.words + 1]) - lo
        if not counts.sum() or images == 0:
            return np.zeros(images, np.float64), np.zeros(images, np.int64)
        total = np.zeros(images, np.float64)
        # the entries of a run of query words at a time (about CHUNK_ENTRIES), gathered by
        # their positions (np.take: twice as fast as copying a slice per word, whose lists
        # hold about 150 entries in a segment of max_segment_rows), into arrays small
        # enough to stay in cache
        ends = np.cumsum(counts)
        stored = _words64(inverted.entry_bits)
        first = 0
        while first < len(counts):
            last = int(np.searchsorted(ends, ends[first] - counts[first] + CHUNK_ENTRIES))
            last = max(last, first + 1)
            n = counts[first:last]
            at = np.repeat(lo[first:last] - (np.cumsum(n) - n), n)
            at += np.arange(len(at))
            weight = self._weights(np.take(stored, at, axis=0), first, n)
            image = np.take(inverted.entry_image, at)
            total += np.bincount(image, weights=weight, minlength=images)
            first = last
        shared = np.floor(total / self._shared)
        score = total - self._shared * shared
        norm = np.sqrt(np.maximum(np.asarray(inverted.image_words, np.float64), 1.0))
        return score / norm / np.sqrt(max(len(self.words), 1)), shared.astype(np.int64)

    def _weights(self, bits: np.ndarray, at: int, counts: np.ndarray) -> np.ndarray:
        """The weight (self._weight) of each of ``bits``, the signatures (_words64) of the
        entries of the query words ``at``, ``at + 1``, ..., ``counts`` of each."""
        bits ^= np.repeat(self._bits64[at : at + len(counts)], counts, axis=0)
        hamming = np.bitwise_count(bits[:, 0]).astype(np.uint16)
        for column in range(1, bits.shape[1]):  # at most D bits differ: D < 2**16
            hamming += np.bitwise_count(bits[:, column])
        return np.take(self._weight, hamming)  # faster than indexing by an array


def _words64(bits: np.ndarray) -> np.ndarray:
    """Packed signatures as 64-bit words when they divide so (128-D: 2 per signature, the
    XOR and popcount faster than byte by byte), else as they are."""
    if bits.shape[1] % 8 or not bits.flags.c_contiguous:
        return np.asarray(bits)
    return bits.view(np.uint64)


def first_stage(
    view: View,
    features: Features,
    params: SearchParams,
    size: int,
    skip: np.ndarray,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[WordChoice, Hits]:
    """What a search's shortlist is chosen from: up to ``size`` sealed images by the words
    of the query's strongest descriptors (by_words; as many as look up rows), and the hits
    of the query's nearest rows among the images without words (the growing buffer,
    searched exactly until it is sealed, and segments written before the index had
    words)."""
    p = params
    lookup = p.lookup_features_for(features.backend)
    # words of the strongest descriptors only, like the lookups: the same shortlists on the
    # evaluation photos (mAP 0.941 both) at half the product with the words
    which = lookup_rows(features.strengths, len(features), lookup)
    # over each codebook the segments use (two while merges rewrite segments with new words)
    words = [QueryWords(features.descriptors[which], b, p.query_words) for b in view.codebooks]
    hits = nearest_hits(view, features.descriptors, which, p.k, p.search_k, skip, pool)
    return by_words(view, words, size, skip), hits


def by_words(view: View, words: list[QueryWords], size: int, skip: np.ndarray) -> WordChoice:
    """The ``size`` best-scored sealed images (global numbers, best first; ties by image
    id), leaving out removed images and ``skip``; each segment scored by the ``words`` of
    its codebook."""
    if not words:
        return WordChoice.empty()
    by_version = {w.codebook_version: w for w in words}
    total = len(view.sealed.images)
    score = np.zeros(total, np.float64)
    shared = np.zeros(total, np.int64)
    for s, seg in enumerate(view.segments):
        if seg.inverted is None or seg.inverted.codebook_version not in by_version:
            continue
        lo = view.image_offsets[s]
        got, counts = by_version[seg.inverted.codebook_version].match(seg.inverted)
        score[lo : lo + len(got)] = got
        shared[lo : lo + len(got)] = counts
    gone = np.union1d(view.dead, skip).astype(np.int64)
    score[gone[gone < total]] = 0.0
    pool = np.nonzero(score > 0)[0]
    if pool.size > size:
        cutoff = np.partition(score[pool], pool.size - size)[pool.size - size]
        pool = pool[score[pool] >= cutoff]
    images = view.sealed.images
    order = sorted(pool.tolist(), key=lambda i: (-score[i], images[i].image_id))[:size]
    chosen = np.array(order, np.int64)
    return WordChoice(chosen, score[chosen], shared[chosen], words[0].codebook_version)
