"""Resize for extraction and map keypoints back to the original image."""

from __future__ import annotations

import cv2
import numpy as np


def fit_scale(width: int, height: int, max_side: int, enlarge: bool = False) -> float:
    """Scale factor that makes the longer side at most ``max_side`` (exactly ``max_side``
    with ``enlarge``)."""
    longer = max(width, height)
    return 1.0 if longer <= max_side and not enlarge else max_side / longer


def resize_to_fit(
    image: np.ndarray, max_side: int, enlarge: bool = False
) -> tuple[np.ndarray, float, float]:
    """Resize keeping the aspect ratio; returns (image, sx, sy) with sx = new_w / old_w."""
    height, width = image.shape[:2]
    scale = fit_scale(width, height, max_side, enlarge)
    if scale == 1.0:
        return image, 1.0, 1.0
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    shrink = scale < 1.0
    resized = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )
    return resized, new_w / width, new_h / height


def to_original(locations_xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Map (x, y) pixel-centre coordinates of the resized image to the original image."""
    if sx == 1.0 and sy == 1.0:
        return locations_xy.astype(np.float32, copy=False)
    out = np.empty_like(locations_xy, dtype=np.float32)
    out[:, 0] = (locations_xy[:, 0] + 0.5) / sx - 0.5
    out[:, 1] = (locations_xy[:, 1] + 0.5) / sy - 0.5
    return out
