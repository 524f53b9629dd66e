"""The visual words of the aggregated shortlist: a codebook of unit vectors, fitted by
spherical k-means on descriptors, stored with the index and versioned. A descriptor's
nearest words are found by a full product with the words (assign_exact), when a segment is
built and for a query: on 2 cores it is exact and about 5 times faster than Annoy over the
words at the search_k (1,000) where Annoy finds the nearest word of 94% of real
descriptors. Annoy's trees over the words are stored beside them for bench/shortlist.py,
which measures the two.

A large codebook (TWO_LEVEL_WORDS or more) is a two-level vocabulary tree (Nister and
Stewenius): about sqrt(W) cells, each with the words fitted on the descriptors nearest it.
A descriptor's words are then sought among the words of its ``probe`` nearest cells: about
3 sqrt(W) products instead of W (65,536 words: 768 instead of 65,536), for fitting, for a
segment's build and for a query alike.

    codebook/  meta.json      format, levels, backend, dimension, words, version, fitted on
               centroids.npy  [W, D] int8: each unit row scaled so that its largest
                              component is ±127, as the index keeps descriptors (a
                              two-level codebook's by cell); float32 unit rows in formats
                              1 and 2
               cells.npy      [C, D] float32 unit rows (two-level only)
               cell_starts.npy  [C + 1] int64: cell c's words are [starts[c], starts[c+1])
               words.ann      one level only: Annoy (angular) over the rows, seeded: the
                              same words give the same file

The words stay in memory as int8, 128 bytes each at 128-D instead of 512: a word's
similarity with a descriptor is the product with its int8 row divided by that row's
length, the same at build and at query (in a one-off comparison at 1,000 images, the
rounded words shortlisted as the float ones did: recall 1.0 both, held 0.994 against
0.992).

The version is the first 16 hex digits of the SHA-256 of the centroids (and of the cells):
two indexes (two shards) share a codebook exactly when their versions are equal, and an
inverted file records the version it was built with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from ..errors import IndexCorrupt
from .compact import quantize_descriptors
from .kmeans import (
    ROUNDS,
    SAMPLE_PER_WORD,
    SEED,
    assign_exact,
    assign_two_level,
    fit,
    fit_two_level,
)
from .wal import publish_dir

__all__ = ["SAMPLE_PER_WORD", "SEED", "Codebook", "assign_exact", "fit", "fitted", "load", "save"]

# 1: one level; 2: two levels (cells.npy, cell_starts.npy), which code that reads only 1
# refuses rather than assigning words by a full product the segments were not built with;
# 3: int8 words, one or two levels as meta.json's "levels" says
FORMATS = (1, 2, 3)
N_TREES = 32
MIN_ROWS_PER_WORD = 16  # sampled descriptors fitted per word, at least: fewer fit fewer words
TWO_LEVEL_WORDS = 16_384  # from this many words, a two-level codebook


@dataclass(frozen=True)
class Codebook:
    backend: str
    vectors: np.ndarray  # [W, D] the words: int8 rows (format 3), or float32 unit rows
    annoy: AnnoyIndex | None  # one level only (what bench/shortlist.py measures)
    version: str
    fitted_on: int  # descriptors the words were fitted on
    path: Path | None = None  # its folder, once stored
    cells: np.ndarray | None = None  # [C, D] float32 unit rows: two-level
    cell_starts: np.ndarray | None = None  # [C + 1] int64
    # [W] float32: 1 / each row's length (int8 words; None for unit rows)
    inverse_norms: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.vectors.dtype == np.int8:
            norms = np.linalg.norm(self.vectors.astype(np.float32), axis=1)
            inverse = (1.0 / np.maximum(norms, 1e-12)).astype(np.float32)
            object.__setattr__(self, "inverse_norms", inverse)

    @property
    def words(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def centroids(self) -> np.ndarray:
        """The words as float32 unit rows [W, D] (a copy for int8 words: for fitting's
        checks and the bench, not for searches)."""
        return self.rows(np.arange(self.words))

    def rows(self, words: np.ndarray) -> np.ndarray:
        """Words ``words`` as float32 unit rows [len(words), D]."""
        got = np.asarray(self.vectors[words], np.float32)
        if self.inverse_norms is not None:
            got *= self.inverse_norms[words][:, None]
        return got

    def bytes_in_memory(self) -> int:
        """Its words, their lengths and its cells (Annoy's trees over the words are mapped,
        and read only by bench/shortlist.py)."""
        arrays = (self.vectors, self.inverse_norms, self.cells)
        return sum(int(a.nbytes) for a in arrays if a is not None)

    def assign(self, x: np.ndarray, per_row: int = 1) -> np.ndarray:
        """The ``per_row`` nearest words of each unit row of ``x`` (largest dot product
        first): [n, per_row] int64. By a full product with the words, or for a two-level
        codebook among the words of the PROBE nearest cells."""
        inverse = self.inverse_norms
        if self.cells is None or self.cell_starts is None:
            return assign_exact(x, self.vectors, per_row, inverse)
        return assign_two_level(
            x, self.cells, self.cell_starts, self.vectors, per_row, inverse_norms=inverse
        )

    @property
    def signature_bytes(self) -> int:
        """A binarized residual's size: one bit per dimension."""
        return (self.dimension + 7) // 8

    def nearest(self, x: np.ndarray, per_row: int = 1, search_k: int = -1) -> np.ndarray:
        """The ``per_row`` nearest words of each unit row of ``x``: [n, per_row] int32,
        nearest first (Annoy; ``search_k`` as Annoy takes it)."""
        if self.annoy is None:
            raise ValueError("a two-level codebook has no Annoy trees over its words")
        out = np.empty((len(x), per_row), np.int32)
        for i, v in enumerate(np.asarray(x, np.float32)):
            out[i] = self.annoy.get_nns_by_vector(v, per_row, search_k)
        return out


def version_of(centroids: np.ndarray, cells: np.ndarray | None = None) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(centroids, np.float32).tobytes())
    if cells is not None:
        digest.update(np.ascontiguousarray(cells, np.float32).tobytes())
    return digest.hexdigest()[:16]


def _annoy(centroids: np.ndarray) -> AnnoyIndex:
    """Annoy (angular: the rows' lengths do not matter) over the words."""
    annoy = AnnoyIndex(centroids.shape[1], "angular")
    annoy.set_seed(SEED)
    for i, v in enumerate(centroids):
        annoy.add_item(i, v)
    annoy.build(N_TREES, n_jobs=1)  # one thread: the same words give the same trees
    return annoy


def create(
    backend: str,
    centroids: np.ndarray,
    fitted_on: int,
    cells: np.ndarray | None = None,
    cell_starts: np.ndarray | None = None,
) -> Codebook:
    """A codebook of ``centroids`` (int8 rows, or float32 unit rows; and, two-level, of
    ``cells`` and their words' ``cell_starts``)."""
    if centroids.dtype != np.int8:
        centroids = np.ascontiguousarray(centroids, np.float32)
    if cells is not None:
        cells = np.ascontiguousarray(cells, np.float32)
        cell_starts = np.asarray(cell_starts, np.int64)
    version = version_of(centroids, cells)
    annoy = _annoy(centroids) if cells is None else None
    return Codebook(backend, centroids, annoy, version, fitted_on, None, cells, cell_starts)


def fitted(
    backend: str,
    rows: np.ndarray,
    words: int,
    rounds: int = ROUNDS,
    sample_per_word: int = SAMPLE_PER_WORD,
    stopping: Callable[[], bool] = lambda: False,
) -> Codebook:
    """A codebook of ``words`` words fitted on ``rows`` (two-level from TWO_LEVEL_WORDS),
    kept as int8; kmeans.fit's settings, and Stopped once ``stopping()`` is true."""
    settings = (SEED, rounds, sample_per_word, stopping)
    if words >= TWO_LEVEL_WORDS:
        centroids, cells, starts = fit_two_level(rows, words, *settings)
        return create(backend, quantize_descriptors(centroids), len(rows), cells, starts)
    return create(backend, quantize_descriptors(fit(rows, words, *settings)), len(rows))


def save(codebook: Codebook, path: Path) -> None:
    """Write ``path`` (a folder) through a temporary folder renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=False)
    np.save(tmp / "centroids.npy", codebook.vectors, allow_pickle=False)
    if codebook.cells is not None:
        np.save(tmp / "cells.npy", codebook.cells, allow_pickle=False)
        np.save(tmp / "cell_starts.npy", codebook.cell_starts, allow_pickle=False)
    if codebook.annoy is not None:
        codebook.annoy.save(str(tmp / "words.ann"))
    levels = 1 if codebook.cells is None else 2
    meta = {
        "format": 3 if codebook.vectors.dtype == np.int8 else levels,
        "levels": levels,
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
        if meta.get("format") not in FORMATS:
            raise IndexCorrupt(
                f"{path}: codebook format {meta.get('format')} is not one of {FORMATS} (written "
                "by a newer version of the search service)"
            )
        centroids = np.load(path / "centroids.npy", allow_pickle=False)
        cells = starts = annoy = None
        # formats 1 and 2 are their levels; format 3 says them
        if meta.get("levels", meta["format"]) == 2:
            cells = np.load(path / "cells.npy", allow_pickle=False)
            starts = np.load(path / "cell_starts.npy", allow_pickle=False)
        else:
            annoy = AnnoyIndex(int(meta["dimension"]), "angular")
            annoy.load(str(path / "words.ann"))
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path}: cannot load the codebook ({exc})") from None
    if (
        centroids.dtype != (np.int8 if meta["format"] == 3 else np.float32)
        or centroids.shape != (meta["words"], meta["dimension"])
        or (annoy is not None and annoy.get_n_items() != meta["words"])
        or version_of(centroids, cells) != meta["version"]
        or (cells is not None and not _cells_agree(cells, starts, len(centroids)))
    ):
        raise IndexCorrupt(f"{path}: the codebook's files disagree with its meta.json")
    return Codebook(
        meta["backend"],
        centroids,
        annoy,
        meta["version"],
        int(meta["fitted_on"]),
        path,
        cells,
        starts,
    )


def _cells_agree(cells: np.ndarray, starts: np.ndarray | None, words: int) -> bool:
    return (
        starts is not None
        and starts.shape == (len(cells) + 1,)
        and int(starts[0]) == 0
        and int(starts[-1]) == words
        and bool(np.all(np.diff(starts) > 0))
    )
