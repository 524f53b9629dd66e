"""What a search's first stage finds, and what shards send a coordinator: the hits of a
lookup (votes count them), and the images chosen by their words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hits:
    """k-NN results flattened: one entry per (query keypoint, database row) pair."""

    query: np.ndarray  # [H] int32 query keypoint
    row: np.ndarray  # [H] int64 database row
    image: np.ndarray  # [H] int32 database image index
    dist: np.ndarray  # [H] float32 Euclidean distance

    @classmethod
    def empty(cls) -> Hits:
        i32 = np.zeros(0, np.int32)
        return cls(i32, np.zeros(0, np.int64), i32.copy(), np.zeros(0, np.float32))


@dataclass(frozen=True)
class WordChoice:
    """Images chosen by their words, best first: image numbers (of a view, or of a list of
    images a shard answered), their kernel scores and the query words each shares."""

    image: np.ndarray  # [n] int64
    score: np.ndarray  # [n] float64
    shared: np.ndarray  # [n] int64
    codebook: str = ""  # the version of the words that scored them

    @classmethod
    def empty(cls) -> WordChoice:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int64))
