"""The feature contract, written once: what every extractor guarantees of the features it
sends (``conform``) and what the search service refuses at its door (``check``).

Features are ``landmark.wire.Features``: locations (x, y) in pixels of the image as sent,
inside it; descriptors finite and unit length; one location per descriptor. A backend's
model may place a keypoint a little past the border (a receptive-field centre computed on
a padded grid, a resize's rounding): the extractor clips those into the image and drops
the ones far outside, so that the search service, which refuses what lies more than
MARGIN outside, accepts every extraction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from landmark.wire import Features

MAX_IMAGE_SIDE = 100_000  # pixels; the extractor refuses images far smaller than this
MAX_NORM = 1.01  # descriptors are L2-normalised (norm 1; the door allows rounding)
MIN_NORM = 0.99
MARGIN = 0.02  # the door lets locations lie this share of the longer side outside


@dataclass(frozen=True)
class Conformed:
    """What ``conform`` changed: keypoints clipped into the image, keypoints dropped (far
    outside it, or with a descriptor that is not finite or has no direction)."""

    clipped: int = 0
    dropped: int = 0


def beyond_door(locations: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """[N] True where a location lies farther outside the image than the door accepts:
    MARGIN of the longer side (and a pixel) past its edges."""
    width, height = image_size
    s = MARGIN * max(width, height) + 1.0
    x, y = locations[:, 0], locations[:, 1]
    return (x < -s) | (x > width + s) | (y < -s) | (y > height + s)


def conform(f: Features) -> tuple[Features, Conformed]:
    """``f`` as the contract promises it: a location within the door's slack outside the
    image is clipped to the image's edge pixels, one farther out is dropped with its
    descriptor, and descriptors are renormalised to unit length (rows that are not finite
    or are all zero are dropped)."""
    width, height = f.image_size
    if not len(f):
        return f, Conformed()
    x, y = f.locations[:, 0], f.locations[:, 1]
    finite = np.isfinite(f.locations).all(axis=1) & np.isfinite(f.descriptors).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], f.descriptors, 0.0), axis=1)
    near = ~beyond_door(np.where(finite[:, None], f.locations, np.inf), f.image_size)
    keep = finite & near & (norms > 1e-12)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    clipped = int((keep & ~inside).sum())
    dropped = int((~keep).sum())
    if not clipped and not dropped and np.abs(norms - 1.0).max() <= 1e-4:
        return f, Conformed()
    locations = f.locations[keep].copy()
    np.clip(locations[:, 0], 0, max(width - 1, 0), out=locations[:, 0])
    np.clip(locations[:, 1], 0, max(height - 1, 0), out=locations[:, 1])
    descriptors = (f.descriptors[keep] / norms[keep, None]).astype(np.float32)
    out = replace(
        f,
        locations=locations.astype(np.float32),
        descriptors=descriptors,
        scales=None if f.scales is None else f.scales[keep],
        strengths=None if f.strengths is None else f.strengths[keep],
    )
    return out, Conformed(clipped, dropped)


def check(f: Features) -> None:
    """The search service's door: ValueError saying what breaks the contract."""
    width, height = f.image_size
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise ValueError(
            f"image size {width}x{height} is not a photo's (each side 1 to {MAX_IMAGE_SIDE} pixels)"
        )
    if not len(f):
        return
    norms = np.linalg.norm(f.descriptors.astype(np.float64), axis=1)
    bad = (norms > MAX_NORM) | (norms < MIN_NORM)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"descriptor {i} has norm {norms[i]:.3g}; descriptors must be L2-normalised "
            "(unit length), as every extractor backend sends them"
        )
    outside = beyond_door(f.locations, f.image_size)
    if outside.any():
        x, y = f.locations[:, 0], f.locations[:, 1]
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"location {i} ({x[i]:.6g}, {y[i]:.6g}) lies outside the {width}x{height} "
            "image; locations are pixels of the image as sent"
        )
