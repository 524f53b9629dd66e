"""Extractor service settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass

from serving.config import ServingConfig
from serving.settings import check_positive, setting


@dataclass(frozen=True)
class ExtractorConfig(ServingConfig):
    host: str = setting("", "LANDMARK_EXTRACTOR_HOST")
    port: int = setting(50051, "LANDMARK_EXTRACTOR_PORT")
    metrics_port: int = setting(9151, "LANDMARK_EXTRACTOR_METRICS_PORT")
    max_rpcs: int = setting(16, "LANDMARK_EXTRACTOR_MAX_RPCS")
    # aliked: learned features, the better answers (docs/quality.md); sift: ~4x cheaper on a CPU.
    backend: str = setting("aliked", "LANDMARK_BACKEND")
    # Requests extracting at once; the others (up to max_rpcs) wait their turn.
    max_concurrent: int = setting(2, "LANDMARK_EXTRACTOR_CONCURRENCY")
    max_features: int = setting(1000, "LANDMARK_MAX_FEATURES")
    max_features_limit: int = setting(10000, "LANDMARK_MAX_FEATURES_LIMIT")
    max_image_size: int = setting(1024, "LANDMARK_MAX_IMAGE_SIZE")
    max_pixels: int = setting(40_000_000, "LANDMARK_MAX_PIXELS")
    max_image_bytes: int = setting(32 << 20, "LANDMARK_MAX_IMAGE_BYTES")
    # delf backend: a TF-Hub handle (URL) or a local folder holding the downloaded module.
    delf_model: str = setting("", "LANDMARK_DELF_MODEL")
    delf_score_threshold: float = setting(100.0, "LANDMARK_DELF_THRESHOLD")
    delf_scales: tuple[float, ...] = setting((), "LANDMARK_DELF_SCALES")
    # aliked backend: the model variant (t16, n16, n32) and the detection score a keypoint needs.
    aliked_variant: str = setting("n16", "LANDMARK_ALIKED_VARIANT")
    aliked_threshold: float = setting(0.2, "LANDMARK_ALIKED_THRESHOLD")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            self,
            "max_rpcs",
            "max_concurrent",
            "max_features",
            "max_features_limit",
            "max_image_size",
            "max_pixels",
            "max_image_bytes",
        )
        if self.max_features > self.max_features_limit:
            raise ValueError(
                f"max_features ({self.max_features}) is above max_features_limit "
                f"({self.max_features_limit})"
            )
