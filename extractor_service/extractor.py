"""The pure core of the extractor: bytes → decoded image → resized → backend → features,
held to the feature contract (landmark.contract: locations inside the image, unit-length
descriptors) whatever the backend returns."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from landmark.contract import Conformed, conform
from landmark.wire import Features

from .backends import Backend
from .decode import decode_image
from .resize import resize_to_fit, to_original


@dataclass(frozen=True)
class Limits:
    default_max_features: int = 1000
    max_features_limit: int = 10000
    default_max_image_size: int = 1024
    max_image_size_limit: int = 4096
    max_pixels: int = 40_000_000
    max_image_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class Extraction:
    features: Features
    processed_size: tuple[int, int]
    extract_ms: float
    conformed: Conformed = Conformed()  # keypoints the contract clipped or dropped


class FeatureExtractor:
    def __init__(self, backend: Backend, limits: Limits) -> None:
        self.backend = backend
        self.limits = limits

    def resolve_options(self, max_features: int, max_image_size: int) -> tuple[int, int]:
        """Apply defaults (0) and check requested values against the limits."""
        lim = self.limits
        if max_features < 0 or max_image_size < 0:
            raise ValueError("max_features and max_image_size must not be negative (0 = default)")
        max_features = max_features or lim.default_max_features
        max_image_size = max_image_size or lim.default_max_image_size
        if max_features > lim.max_features_limit:
            raise ValueError(
                f"max_features={max_features} is above this service's limit of "
                f"{lim.max_features_limit}"
            )
        if not 16 <= max_image_size <= lim.max_image_size_limit:
            raise ValueError(
                f"max_image_size={max_image_size} must be between 16 and {lim.max_image_size_limit}"
            )
        return max_features, max_image_size

    def extract(
        self,
        data: bytes,
        max_features: int = 0,
        max_image_size: int = 0,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> Extraction:
        """Decode ``data`` and extract its features. ``deadline`` (time.monotonic()): when
        the caller stops waiting (Backend.extract)."""
        start = time.perf_counter()
        max_features, max_image_size = self.resolve_options(max_features, max_image_size)
        if len(data) > self.limits.max_image_bytes:
            raise ValueError(
                f"image is {len(data)} bytes, above this service's limit of "
                f"{self.limits.max_image_bytes}"
            )
        image = decode_image(data, self.limits.max_pixels)
        return self.extract_array(
            image, max_features, max_image_size, score_threshold, image_scales, start, deadline
        )

    def extract_array(
        self,
        image: np.ndarray,
        max_features: int,
        max_image_size: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        start: float | None = None,
        deadline: float | None = None,
    ) -> Extraction:
        start = time.perf_counter() if start is None else start
        height, width = image.shape[:2]
        small, sx, sy = resize_to_fit(image, max_image_size, self.backend.enlarge)
        raw = self.backend.extract(small, max_features, score_threshold, image_scales, deadline)
        scales = raw.scales
        if scales is not None:
            scales = (scales / ((sx + sy) / 2.0)).astype(np.float32)
        features, conformed = conform(
            Features(
                backend=self.backend.name,
                locations=to_original(raw.locations, sx, sy),
                descriptors=raw.descriptors.astype(np.float32, copy=False),
                image_size=(width, height),
                scales=scales,
                strengths=raw.strengths,
            )
        )
        elapsed = (time.perf_counter() - start) * 1000.0
        return Extraction(features, (small.shape[1], small.shape[0]), elapsed, conformed)
