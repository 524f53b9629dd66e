"""Hits: what a lookup finds, and what votes count and shards send a coordinator."""

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
