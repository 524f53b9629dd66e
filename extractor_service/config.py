"""Extractor service settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass

from landmark_client.settings import check_positive, setting


@dataclass(frozen=True)
class ExtractorConfig:
    host: str = setting("127.0.0.1", "LANDMARK_EXTRACTOR_HOST")
    port: int = setting(50051, "LANDMARK_EXTRACTOR_PORT")
    backend: str = setting("sift", "LANDMARK_BACKEND")
    workers: int = setting(4, "LANDMARK_EXTRACTOR_WORKERS")
    # Requests extracting at once; the rest wait (bounded by the gRPC worker pool).
    max_concurrent: int = setting(2, "LANDMARK_EXTRACTOR_CONCURRENCY")
    max_features: int = setting(1000, "LANDMARK_MAX_FEATURES")
    max_image_size: int = setting(1024, "LANDMARK_MAX_IMAGE_SIZE")
    max_pixels: int = setting(40_000_000, "LANDMARK_MAX_PIXELS")
    max_image_bytes: int = setting(32 << 20, "LANDMARK_MAX_IMAGE_BYTES")
    # delf backend: a TF-Hub handle (URL) or a local folder holding the downloaded module.
    delf_model: str = setting("", "LANDMARK_DELF_MODEL")
    delf_score_threshold: float = setting(100.0, "LANDMARK_DELF_THRESHOLD")
    delf_scales: tuple[float, ...] = setting((), "LANDMARK_DELF_SCALES")
    grace_seconds: float = setting(5.0, "LANDMARK_GRACE_SECONDS")

    def __post_init__(self) -> None:
        check_positive(
            self,
            "workers",
            "max_concurrent",
            "max_features",
            "max_image_size",
            "max_pixels",
            "max_image_bytes",
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
