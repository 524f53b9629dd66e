"""The visual words of the aggregated shortlist: a codebook of unit vectors, fitted by
spherical k-means on descriptors, stored with the index and versioned. A descriptor's
nearest words are found by a full product with the words (assign_exact), when a segment is
built and for a query: on 2 cores it is exact and about 5 times faster than Annoy over the
words at the search_k (1,000) where Annoy finds the nearest word of 94% of real
descriptors. Annoy's trees over the words are stored beside them for bench/shortlist.py,
which measures the two.

    codebook/  meta.json      format, backend, dimension, words, version, fitted on
               centroids.npy  [W, D] float32 unit rows
               words.ann      Annoy (angular) over the rows, seeded: the same words give
                              the same file

The version is the first 16 hex digits of the SHA-256 of the centroids: two indexes (two
shards) share a codebook exactly when their versions are equal, and an inverted file
records the version it was built with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from ..errors import IndexCorrupt
from .wal import publish_dir

FORMAT = 1
N_TREES = 32
SEED = 1
ROUNDS = 10  # Lloyd iterations: the assignment barely changes after a few
SAMPLE_PER_WORD = 40  # descriptors fitted per word (the rest are not needed)
ASSIGN_BLOCK = 8192  # rows per product in assign_exact: [8192, W] similarities at a time
MIN_ROWS_PER_WORD = 16  # at least this many: fewer descriptors fit fewer words


@dataclass(frozen=True)
class Codebook:
    backend: str
    centroids: np.ndarray  # [W, D] float32 unit rows
    annoy: AnnoyIndex
    version: str
    fitted_on: int  # descriptors the words were fitted on
    path: Path | None = None  # its folder, once stored

    @property
    def words(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.centroids.shape[1])

    def bytes_in_memory(self) -> int:
        """Its centroids and Annoy's trees over them."""
        trees = (self.path / "words.ann").stat().st_size if self.path else 0
        return int(self.centroids.nbytes) + trees

    @property
    def signature_bytes(self) -> int:
        """A binarized residual's size: one bit per dimension."""
        return (self.dimension + 7) // 8

    def nearest(self, x: np.ndarray, per_row: int = 1, search_k: int = -1) -> np.ndarray:
        """The ``per_row`` nearest words of each unit row of ``x``: [n, per_row] int32,
        nearest first (Annoy; ``search_k`` as Annoy takes it)."""
        out = np.empty((len(x), per_row), np.int32)
        for i, v in enumerate(np.asarray(x, np.float32)):
            out[i] = self.annoy.get_nns_by_vector(v, per_row, search_k)
        return out


def version_of(centroids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(centroids, np.float32).tobytes()).hexdigest()[:16]


def fit(
    descriptors: np.ndarray,
    words: int,
    seed: int = SEED,
    rounds: int = ROUNDS,
    sample_per_word: int = SAMPLE_PER_WORD,
) -> np.ndarray:
    """Spherical k-means (Lloyd, renormalised centroids) of unit rows: [words, D] float32.
    Fitted on at most ``sample_per_word`` rows per word, chosen with ``seed``; an empty word
    takes a random row. The same rows and seed give the same words."""
    x = np.asarray(descriptors, np.float32)
    if len(x) < words:
        raise ValueError(f"{words} words need at least as many descriptors (got {len(x)})")
    rng = np.random.default_rng(seed)
    if len(x) > sample_per_word * words:
        x = x[np.sort(rng.choice(len(x), sample_per_word * words, replace=False))]
    centroids = x[rng.choice(len(x), words, replace=False)].copy()
    for _ in range(rounds):
        nearest = assign_exact(x, centroids)[:, 0]
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, x)
        empty = np.bincount(nearest, minlength=words) == 0
        sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return np.ascontiguousarray(centroids, np.float32)


def assign_exact(x: np.ndarray, centroids: np.ndarray, per_row: int = 1) -> np.ndarray:
    """The ``per_row`` nearest words of each unit row by a full product (largest dot
    product first): [n, per_row] int64. What fitting uses, and what Annoy's lookup is
    measured against."""
    out = np.empty((len(x), per_row), np.int64)
    for lo in range(0, len(x), ASSIGN_BLOCK):
        sims = np.asarray(x[lo : lo + ASSIGN_BLOCK], np.float32) @ centroids.T
        # one argmax per word, each word taken out once found: several times faster than
        # an argpartition of the whole [n, W] block for the 1-3 words asked for
        block = out[lo : lo + ASSIGN_BLOCK]
        rows = np.arange(len(sims))
        for j in range(per_row):
            block[:, j] = sims.argmax(axis=1)
            sims[rows, block[:, j]] = -np.inf
    return out


def _annoy(centroids: np.ndarray) -> AnnoyIndex:
    annoy = AnnoyIndex(centroids.shape[1], "angular")
    annoy.set_seed(SEED)
    for i, v in enumerate(centroids):
        annoy.add_item(i, v)
    annoy.build(N_TREES, n_jobs=1)  # one thread: the same words give the same trees
    return annoy


def create(backend: str, centroids: np.ndarray, fitted_on: int) -> Codebook:
    centroids = np.ascontiguousarray(centroids, np.float32)
    return Codebook(backend, centroids, _annoy(centroids), version_of(centroids), fitted_on)


def save(codebook: Codebook, path: Path) -> None:
    """Write ``path`` (a folder) through a temporary folder renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=False)
    np.save(tmp / "centroids.npy", codebook.centroids, allow_pickle=False)
    codebook.annoy.save(str(tmp / "words.ann"))
    meta = {
        "format": FORMAT,
        "backend": codebook.backend,
        "dimension": codebook.dimension,
        "words": codebook.words,
        "version": codebook.version,
        "fitted_on": codebook.fitted_on,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    publish_dir(tmp, path)


def load(path: Path) -> Codebook:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise IndexCorrupt(f"{path}: codebook format {meta.get('format')} is not {FORMAT}")
        centroids = np.load(path / "centroids.npy", allow_pickle=False)
        annoy = AnnoyIndex(int(meta["dimension"]), "angular")
        annoy.load(str(path / "words.ann"))
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path}: cannot load the codebook ({exc})") from None
    if (
        centroids.dtype != np.float32
        or centroids.shape != (meta["words"], meta["dimension"])
        or annoy.get_n_items() != meta["words"]
        or version_of(centroids) != meta["version"]
    ):
        raise IndexCorrupt(f"{path}: the codebook's files disagree with its meta.json")
    return Codebook(
        meta["backend"], centroids, annoy, meta["version"], int(meta["fitted_on"]), path
    )
