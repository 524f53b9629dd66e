"""How a sealed segment keeps its rows small: descriptors as int8, locations as uint16, and
Annoy over a PCA projection of the descriptors (as DELF reduces its own with PCA).

- descriptors: each unit-length row scaled so that its largest component is ±127 and
  rounded to int8; read back as the int8 row renormalised to unit length (the scale is not
  needed: every stored descriptor has unit length). D bytes per row instead of 4·D.
- locations: (x, y) as positions along [-25%, 125%] of the image's width and height (the
  service accepts keypoints slightly outside the frame) in 65,535 steps (uint16): at most
  0.1 px off for an 8,000-pixel side. 4 bytes per row instead of 8.
- projection: the mean and the top P principal axes of the segment's own descriptors,
  fitted when the segment is written (a covariance accumulated image by image, so memory
  does not grow with the segment). Annoy holds the P-D projections; its candidates are
  re-ranked by their distance between the full (int8) descriptors, so distances mean the
  same in every segment, in the growing buffer and on every shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOCATION_STEPS = 65535
LOCATION_LOW, LOCATION_SPAN = -0.25, 1.5  # stored range, in image widths / heights


def quantize_descriptors(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    peak = np.abs(rows).max(axis=1, keepdims=True)
    scale = np.where(peak > 0, 127.0 / np.maximum(peak, 1e-12), 0.0)
    return np.clip(np.rint(rows * scale), -127, 127).astype(np.int8)


def dequantize_descriptors(rows: np.ndarray) -> np.ndarray:
    out = np.asarray(rows, np.float32)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def quantize_locations(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    side = np.maximum(np.asarray(size, np.float64), 1.0)
    steps = (np.asarray(xy, np.float64) / side - LOCATION_LOW) / LOCATION_SPAN * LOCATION_STEPS
    return np.clip(np.rint(steps), 0, LOCATION_STEPS).astype(np.uint16)


def dequantize_locations(q: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    side = np.maximum(np.asarray(size, np.float64), 1.0)
    fraction = np.asarray(q, np.float64) / LOCATION_STEPS * LOCATION_SPAN + LOCATION_LOW
    return (fraction * side).astype(np.float32)


@dataclass(frozen=True)
class Projection:
    mean: np.ndarray  # [D] float32
    axes: np.ndarray  # [D, P] float32, orthonormal columns, most variance first

    @property
    def dimension(self) -> int:
        return int(self.axes.shape[1])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return ((np.asarray(rows, np.float32) - self.mean) @ self.axes).astype(np.float32)


class Covariance:
    """The mean and covariance of rows given in batches, in float64, in O(D²) memory."""

    def __init__(self, dimension: int) -> None:
        self.n = 0
        self.total = np.zeros(dimension, np.float64)
        self.outer = np.zeros((dimension, dimension), np.float64)

    def add(self, rows: np.ndarray) -> None:
        x = np.asarray(rows, np.float64)
        self.n += x.shape[0]
        self.total += x.sum(axis=0)
        self.outer += x.T @ x

    def projection(self, dimension: int) -> Projection:
        """The top ``dimension`` principal axes (all of them when there are fewer)."""
        d = self.total.shape[0]
        p = min(dimension, d)
        mean = self.total / max(self.n, 1)
        cov = self.outer / max(self.n, 1) - np.outer(mean, mean)
        _, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
        axes = vectors[:, ::-1][:, :p]
        return Projection(mean.astype(np.float32), np.ascontiguousarray(axes, np.float32))
