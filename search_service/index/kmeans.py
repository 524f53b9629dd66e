"""Spherical k-means for the visual words (codebook.py stores them): fitting, in one level
or two (cells, then words within each cell), and finding a descriptor's nearest words by
products with them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import Stopped

SEED = 1
ROUNDS = 10  # Lloyd iterations: the assignment barely changes after a few
SAMPLE_PER_WORD = 40  # descriptors fitted per word (the rest are not needed)
ASSIGN_BLOCK = 8192  # rows per product in assign_exact: [8192, W] similarities at a time
PROBE = 2  # cells a descriptor's words are sought in (two-level)


def fit(
    descriptors: np.ndarray,
    words: int,
    seed: int = SEED,
    rounds: int = ROUNDS,
    sample_per_word: int = SAMPLE_PER_WORD,
    stopping: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Spherical k-means (Lloyd, renormalised centroids) of unit rows: [words, D] float32.
    Fitted on at most ``sample_per_word`` rows per word, chosen with ``seed``; an empty word
    takes a random row. The same rows and seed give the same words. Stopped once
    ``stopping()`` is true (looked at every few thousand rows)."""
    rng = np.random.default_rng(seed)
    x = _sample(descriptors, words, sample_per_word, rng)
    return _lloyd(x, words, rng, rounds, stopping)


def fit_two_level(
    descriptors: np.ndarray,
    words: int,
    seed: int = SEED,
    rounds: int = ROUNDS,
    sample_per_word: int = SAMPLE_PER_WORD,
    stopping: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-level codebook of about ``words`` words: sqrt(words) cells fitted on the
    sample, then in each cell words fitted on the sample's rows nearest it, as many as its
    share of the sample (at least 1, at most one per row). Returns (centroids by cell,
    cells, cell_starts)."""
    x = _sample(descriptors, words, sample_per_word, np.random.default_rng(seed))
    side = int(np.ceil(np.sqrt(words)))
    cells = _lloyd(x, side, np.random.default_rng(seed), rounds, stopping)
    cell_of = assign_exact(x, cells)[:, 0]
    parts = []
    for c in range(side):
        mine = x[cell_of == c]
        k = min(len(mine), max(1, round(words * len(mine) / len(x))))
        # a cell no sampled row is nearest to keeps itself as its one word
        rng = np.random.default_rng(seed)
        parts.append(_lloyd(mine, k, rng, rounds, stopping) if k else cells[[c]])
    starts = np.cumsum([0] + [len(part) for part in parts], dtype=np.int64)
    return np.ascontiguousarray(np.concatenate(parts), np.float32), cells, starts


def _sample(
    descriptors: np.ndarray, words: int, per_word: int, rng: np.random.Generator
) -> np.ndarray:
    """At most ``per_word`` rows per word of ``descriptors`` (float32), chosen with
    ``rng``, in their order."""
    x = np.asarray(descriptors, np.float32)
    if len(x) < words:
        raise ValueError(f"{words} words need at least as many descriptors (got {len(x)})")
    if len(x) > per_word * words:
        x = x[np.sort(rng.choice(len(x), per_word * words, replace=False))]
    return x


def _lloyd(
    x: np.ndarray,
    words: int,
    rng: np.random.Generator,
    rounds: int,
    stopping: Callable[[], bool],
) -> np.ndarray:
    """``rounds`` of Lloyd's iterations on the unit rows ``x`` from ``words`` of them
    chosen with ``rng``, the centroids renormalised; an empty word takes a random row."""
    centroids = x[rng.choice(len(x), words, replace=False)].copy()
    for _ in range(rounds):
        nearest = assign_exact(x, centroids, stopping=stopping)[:, 0]
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, x)
        empty = np.bincount(nearest, minlength=words) == 0
        sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return np.ascontiguousarray(centroids, np.float32)


def assign_two_level(
    x: np.ndarray,
    cells: np.ndarray,
    cell_starts: np.ndarray,
    centroids: np.ndarray,
    per_row: int = 1,
    probe: int = PROBE,
    inverse_norms: np.ndarray | None = None,
) -> np.ndarray:
    """``assign_exact`` among the words of each row's ``probe`` nearest cells: [n,
    per_row] int64. The rows are grouped by cell, and each cell's words are multiplied
    once with the rows that probe it."""
    x = np.asarray(x, np.float32)
    probe = min(probe, len(cells))
    starts = cell_starts.tolist()
    out = np.empty((len(x), per_row), np.int64)
    for lo in range(0, len(x), ASSIGN_BLOCK):
        block = x[lo : lo + ASSIGN_BLOCK]
        n = len(block)
        pair_cell = assign_exact(block, cells, probe).reshape(-1)  # [n * probe]
        order = np.argsort(pair_cell, kind="stable")
        rows = block[order // probe]  # each pair's row, the pairs by cell
        present, first = np.unique(pair_cell[order], return_index=True)
        bounds = np.append(first, len(order)).tolist()
        # per pair, its cell's nearest words (numbers within the cell), the pairs by cell
        top = np.zeros((n * probe, per_row), np.int64)
        every = np.arange(len(order))
        for c, a, b in zip(present.tolist(), bounds[:-1], bounds[1:], strict=True):
            cell = slice(starts[c], starts[c + 1])
            inverse = None if inverse_norms is None else inverse_norms[cell]
            s = _similarities(rows[a:b], centroids[cell], inverse)
            for j in range(min(per_row, starts[c + 1] - starts[c])):
                top[a:b, j] = s.argmax(axis=1)
                if j + 1 < per_row:
                    s[every[: b - a], top[a:b, j]] = -np.inf
        # as word numbers, back in pair order; per row, the per_row best of its probe
        # cells' words (a cell of fewer words than per_row offers those it has)
        best = np.empty_like(top)
        best[order] = top
        best += cell_starts[pair_cell][:, None]
        chosen = np.asarray(centroids[best], np.float32)
        sims = np.einsum("rd,rkd->rk", np.repeat(block, probe, axis=0), chosen)
        if inverse_norms is not None:
            sims *= inverse_norms[best]
        size = np.diff(cell_starts)[pair_cell]
        sims[np.arange(per_row)[None, :] >= size[:, None]] = -np.inf
        best = best.reshape(n, probe * per_row)
        sims = sims.reshape(n, probe * per_row)
        pick = np.argsort(-sims, axis=1, kind="stable")[:, :per_row]
        out[lo : lo + n] = np.take_along_axis(best, pick, axis=1)
    return out


def assign_exact(
    x: np.ndarray,
    centroids: np.ndarray,
    per_row: int = 1,
    inverse_norms: np.ndarray | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """The ``per_row`` nearest words of each unit row by a full product (largest dot
    product first): [n, per_row] int64. What fitting uses, and what Annoy's lookup is
    measured against. ``centroids`` are unit rows, or int8 rows whose lengths are
    1 / ``inverse_norms``."""
    out = np.empty((len(x), per_row), np.int64)
    words = np.asarray(centroids, np.float32)
    for lo in range(0, len(x), ASSIGN_BLOCK):
        if stopping():
            raise Stopped("shutting down")
        rows = np.asarray(x[lo : lo + ASSIGN_BLOCK], np.float32)
        sims = _similarities(rows, words, inverse_norms)
        # one argmax per word, each word taken out once found: several times faster than
        # an argpartition of the whole [n, W] block for the 1-3 words asked for
        block = out[lo : lo + ASSIGN_BLOCK]
        every = np.arange(len(sims))
        for j in range(per_row):
            block[:, j] = sims.argmax(axis=1)
            sims[every, block[:, j]] = -np.inf
    return out


def _similarities(
    rows: np.ndarray, words: np.ndarray, inverse_norms: np.ndarray | None
) -> np.ndarray:
    """Cosine similarities [n, W] of unit ``rows`` with ``words`` (int8 ones divided by
    their lengths, 1 / ``inverse_norms``)."""
    sims = rows @ np.asarray(words, np.float32).T
    if inverse_norms is not None:
        sims *= inverse_norms
    return sims
