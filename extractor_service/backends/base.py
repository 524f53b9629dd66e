"""The one small interface every feature backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawFeatures:
    """Features in the pixel frame of the image the backend was given.

    locations: [N, 2] float32 (x, y); descriptors: [N, D] float32, L2-normalised;
    scales / strengths: [N] float32 or None when the backend has no such notion.
    """

    locations: np.ndarray
    descriptors: np.ndarray
    scales: np.ndarray | None = None
    strengths: np.ndarray | None = None


class Backend(ABC):
    """Extracts local features from an upright uint8 RGB image [H, W, 3].

    Implementations must be safe to call from several threads at once.
    """

    name: str
    dimension: int
    device: str = "CPU"
    # Whether the extractor brings every image to the requested size, enlarging small ones,
    # rather than only shrinking large ones: for single-scale features (the network sees
    # one scale), so that the same scene at two resolutions is seen at one.
    enlarge: bool = False

    @abstractmethod
    def extract(
        self,
        image: np.ndarray,
        max_features: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> RawFeatures:
        """Return at most ``max_features`` keypoints, strongest first.

        ``score_threshold`` and ``image_scales`` override the backend's defaults for one
        request; a backend without such a notion raises ValueError when they are given.
        ``deadline`` (time.monotonic()) is when the caller stops waiting: a backend that
        queues photos (batching.py) drops one still queued then; the others start at once
        and ignore it."""

    def warmup(self) -> None:
        """Run once on a small image so the first request pays no start-up cost."""
        rng = np.random.default_rng(0)
        self.extract(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), 100)


class BatchBackend(Backend):
    """A backend that runs several photos of one size as one batch (on an accelerator a
    batch costs little more than one photo)."""

    @abstractmethod
    def threshold_for(
        self, score_threshold: float | None, image_scales: tuple[float, ...] | None
    ) -> float:
        """Check one request's options (ValueError if they do not apply); return the
        detection threshold it runs with."""

    @abstractmethod
    def extract_batch(
        self, images: list[np.ndarray], max_features: int, threshold: float
    ) -> list[RawFeatures]:
        """``extract`` for photos of one shape [H, W, 3], in their order."""

    def extract(
        self,
        image: np.ndarray,
        max_features: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> RawFeatures:
        threshold = self.threshold_for(score_threshold, image_scales)
        return self.extract_batch([image], max_features, threshold)[0]
