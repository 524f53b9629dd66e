"""The search service's door: features from a request are checked before they touch the
index or a search, so one poisoned image cannot break other callers' searches."""

from __future__ import annotations

import numpy as np

from landmark.v1 import features_pb2
from landmark.wire import Features, features_from_proto

from .errors import InvalidRequest

MAX_IMAGE_SIDE = 100_000  # pixels; the extractor refuses images far smaller than this
MAX_NORM = 1.01  # every backend sends L2-normalised descriptors (norm 1, or 0 for none)
MARGIN = 0.02  # locations may lie this share of the longer side outside the image


def request_features(msg: features_pb2.Features, where: str = "features") -> Features:
    """Features from a request, or InvalidRequest saying what is wrong with them."""
    try:
        f = features_from_proto(msg)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    check_features(f, where)
    return f


def check_features(f: Features, where: str = "features") -> None:
    width, height = f.image_size
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise InvalidRequest(
            f"{where}: image size {width}x{height} is not a photo's (each side 1 to "
            f"{MAX_IMAGE_SIDE} pixels)"
        )
    if len(f):
        norms = np.linalg.norm(f.descriptors.astype(np.float64), axis=1)
        if norms.max() > MAX_NORM:
            raise InvalidRequest(
                f"{where}: descriptor {int(norms.argmax())} has norm {norms.max():.3g}; "
                "descriptors must be L2-normalised, as every extractor backend sends them"
            )
        slack = MARGIN * max(width, height) + 1.0
        x, y = f.locations[:, 0], f.locations[:, 1]
        outside = (x < -slack) | (x > width + slack) | (y < -slack) | (y > height + slack)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise InvalidRequest(
                f"{where}: location {i} ({x[i]:.6g}, {y[i]:.6g}) lies outside the "
                f"{width}x{height} image; locations are pixels of the image as sent"
            )
