"""ALIKED's two light stages after the dense network, in numpy.

``detect`` picks keypoints from the score map (the DKD step: strict local maxima, a
threshold or a budget, soft-argmax refinement) and ``describe`` computes each keypoint's
descriptor with the sparse deformable head (SDDH). Both follow kornia's ``ALIKED``
(``DKD.forward`` and ``SDDH.forward``) operation by operation. The default path runs both
inside the extraction graph (``models/aliked_graph.py``); these serve the previous path,
``--aliked-head numpy``, kept for comparison, and ``tests/unit/test_batching.py`` checks that
the two give the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SOFTMAX_TEMPERATURE = 0.1  # DKD's soft-argmax temperature
_SELU_SCALE = 1.0507009873554805
_SELU_ALPHA = 1.6732632423543772


def selu(x: np.ndarray) -> np.ndarray:
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def unit_columns(values: np.ndarray) -> np.ndarray:
    """L2-normalise along the first axis, as torch's ``F.normalize(dim=1)`` does a map."""
    return values / np.maximum(np.linalg.norm(values, axis=0, keepdims=True), 1e-12)


def bilinear(maps: np.ndarray, xy: np.ndarray, normalise: bool = False) -> np.ndarray:
    """Sample ``maps`` [C, H, W] at pixel positions ``xy`` [M, 2] -> [C, M].

    torch's ``grid_sample(mode="bilinear", align_corners=True, padding_mode="zeros")``:
    a corner outside the map contributes zero. With ``normalise`` each pixel's vector is
    L2-normalised before it is weighted, as if the whole map had been."""
    _, height, width = maps.shape
    x0, y0 = np.floor(xy[:, 0]), np.floor(xy[:, 1])
    fx, fy = (xy[:, 0] - x0).astype(np.float32), (xy[:, 1] - y0).astype(np.float32)
    # The four corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1) in one gather.
    xs = x0.astype(np.int64)[:, None] + np.array([0, 1, 0, 1])
    ys = y0.astype(np.int64)[:, None] + np.array([0, 0, 1, 1])
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    weights *= (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    values = maps[:, np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)]  # [C, M, 4]
    if normalise:
        values = unit_columns(values)
    return np.einsum("cmk,mk->cm", values, weights)


def detect(
    scores: np.ndarray, max_keypoints: int, threshold: float, radius: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of a score map [H, W] in (0, 1): ``(xy [N, 2] float32, scores [N])``,
    strongest first.

    Candidates are the strict maxima of their (2 radius + 1)^2 window at least ``radius``
    pixels from the border. With ``threshold`` > 0 those scoring above it are kept (above
    the map's mean score when none does); at most ``max_keypoints``, the strongest. Each is
    then moved to the soft-argmax of its window, and scored there bilinearly (the order
    returned)."""
    height, width = scores.shape
    size = 2 * radius + 1
    if height < size or width < size:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.float32)
    ring = np.ones((size, size), np.uint8)
    ring[radius, radius] = 0
    neighbours = cv2.dilate(scores, ring, borderType=cv2.BORDER_CONSTANT, borderValue=-1.0)
    is_max = scores > neighbours
    is_max[:radius] = is_max[height - radius :] = False
    is_max[:, :radius] = is_max[:, width - radius :] = False
    flat = scores.ravel()
    chosen = np.flatnonzero(is_max)
    if threshold > 0:
        above = chosen[flat[chosen] > threshold]
        chosen = above if above.size else chosen[flat[chosen] > flat.mean()]
    chosen = chosen[np.argsort(-flat[chosen], kind="stable")[:max_keypoints]]

    rows, cols = np.divmod(chosen, width)
    steps = np.arange(-radius, radius + 1)
    window = scores[
        rows[:, None, None] + steps[None, :, None], cols[:, None, None] + steps[None, None, :]
    ].reshape(len(chosen), size * size)  # row-major: index = dy * size + dx
    weights = np.exp((window - window.max(axis=1, keepdims=True)) / SOFTMAX_TEMPERATURE)
    grid = np.stack(np.meshgrid(steps, steps, indexing="xy"), axis=-1).reshape(-1, 2)
    residual = weights @ grid.astype(np.float32) / weights.sum(axis=1, keepdims=True)
    xy = (np.stack([cols, rows], axis=1) + residual).astype(np.float32)
    refined = bilinear(scores[None], xy)[0]
    order = np.argsort(-refined, kind="stable")  # by the score where each keypoint ended up
    return xy[order], refined[order]


@dataclass(frozen=True)
class HeadWeights:
    """SDDH's learned tensors, named as in the official state dict (``desc_head.*``)."""

    offset_conv1_weight: np.ndarray  # [2 P, C, K, K]
    offset_conv1_bias: np.ndarray  # [2 P]
    offset_conv2_weight: np.ndarray  # [2 P, 2 P, 1, 1]
    offset_conv2_bias: np.ndarray  # [2 P]
    sf_conv_weight: np.ndarray  # [C, C, 1, 1]
    agg_weights: np.ndarray  # [P, C, D]

    FILE_KEYS = {
        "offset_conv1_weight": "desc_head.offset_conv.0.weight",
        "offset_conv1_bias": "desc_head.offset_conv.0.bias",
        "offset_conv2_weight": "desc_head.offset_conv.2.weight",
        "offset_conv2_bias": "desc_head.offset_conv.2.bias",
        "sf_conv_weight": "desc_head.sf_conv.weight",
        "agg_weights": "desc_head.agg_weights",
    }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HeadWeights:
        return cls(**{f: np.asarray(arrays[k], np.float32) for f, k in cls.FILE_KEYS.items()})

    @property
    def dimension(self) -> int:
        return int(self.agg_weights.shape[2])


def describe(features: np.ndarray, xy: np.ndarray, head: HeadWeights) -> np.ndarray:
    """L2-normalised descriptors [N, D] of keypoints ``xy`` [N, 2] (pixels) from the dense
    feature map [C, H, W] (not yet normalised: each pixel read is normalised here): a
    small conv on the K x K patch at each keypoint predicts P sampling offsets, and the
    features sampled there are mixed into one vector."""
    channels, height, width = features.shape
    n = len(xy)
    if n == 0:
        return np.zeros((0, head.dimension), np.float32)
    kernel = head.offset_conv1_weight.shape[-1]
    positions = head.agg_weights.shape[0]

    # The K x K patch whose corner is the keypoint's integer position less K/2 - 1,
    # truncated, then clamped as the reference does (its last start is W - 1 - K).
    pixel = xy.astype(np.int64)
    corner = np.trunc(pixel - kernel / 2 + 1).astype(np.int64)
    corner[:, 0] = np.clip(corner[:, 0], 0, width - 1 - kernel)
    corner[:, 1] = np.clip(corner[:, 1], 0, height - 1 - kernel)
    steps = np.arange(kernel)
    patch = features[
        :,
        corner[:, 1, None, None] + steps[None, :, None],
        corner[:, 0, None, None] + steps[None, None, :],
    ]  # [C, N, K, K]
    patch = unit_columns(patch).transpose(1, 0, 2, 3).reshape(n, -1)
    hidden = selu(
        patch @ head.offset_conv1_weight.reshape(2 * positions, -1).T + head.offset_conv1_bias
    )
    offsets = hidden @ head.offset_conv2_weight[:, :, 0, 0].T + head.offset_conv2_bias
    limit = max(height, width) / 4.0
    offsets = np.clip(offsets, -limit, limit).reshape(n, 2, positions).transpose(0, 2, 1)

    where = (xy[:, None, :] + offsets).reshape(-1, 2)  # [N P, 2]
    sampled = bilinear(features, where, normalise=True).reshape(channels, n, positions)
    mixed = selu(head.sf_conv_weight[:, :, 0, 0] @ sampled.reshape(channels, -1))  # [C, N P]
    mixed = mixed.reshape(channels, n, positions).transpose(1, 2, 0).reshape(n, -1)
    descriptors = mixed @ head.agg_weights.reshape(positions * channels, -1)
    norms = np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
    return (descriptors / norms).astype(np.float32)
