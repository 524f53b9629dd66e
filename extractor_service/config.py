"""Extractor service settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass, field


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class ExtractorConfig:
    host: str = field(default="127.0.0.1", metadata=_env("LANDMARK_EXTRACTOR_HOST"))
    port: int = field(default=50051, metadata=_env("LANDMARK_EXTRACTOR_PORT"))
    backend: str = field(default="sift", metadata=_env("LANDMARK_BACKEND"))
    workers: int = field(default=4, metadata=_env("LANDMARK_EXTRACTOR_WORKERS"))
    # Requests extracting at once; the rest wait (bounded by the gRPC worker pool).
    max_concurrent: int = field(default=2, metadata=_env("LANDMARK_EXTRACTOR_CONCURRENCY"))
    max_features: int = field(default=1000, metadata=_env("LANDMARK_MAX_FEATURES"))
    max_image_size: int = field(default=1024, metadata=_env("LANDMARK_MAX_IMAGE_SIZE"))
    max_pixels: int = field(default=40_000_000, metadata=_env("LANDMARK_MAX_PIXELS"))
    max_image_bytes: int = field(default=32 << 20, metadata=_env("LANDMARK_MAX_IMAGE_BYTES"))
    # delf backend: a TF-Hub handle (URL) or a local folder holding the downloaded module.
    delf_model: str = field(default="", metadata=_env("LANDMARK_DELF_MODEL"))
    delf_score_threshold: float = field(default=100.0, metadata=_env("LANDMARK_DELF_THRESHOLD"))
    delf_scales: tuple[float, ...] = field(default=(), metadata=_env("LANDMARK_DELF_SCALES"))
    grace_seconds: float = field(default=5.0, metadata=_env("LANDMARK_GRACE_SECONDS"))

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0-65535")
        for name in (
            "workers",
            "max_concurrent",
            "max_features",
            "max_image_size",
            "max_pixels",
            "max_image_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
