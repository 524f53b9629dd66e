"""Extractor service settings: CLI flag > environment variable > default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from serving.config import HOST_HELP, MAX_RPCS_HELP, METRICS_PORT_HELP, PORT_HELP, ServingConfig
from serving.settings import check_positive, setting

from .backends import NAMES, AlikedSettings, DelfSettings
from .backends.aliked import MODEL_DIR


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container's cpuset sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ExtractorConfig(ServingConfig):
    host: str = setting("", "LANDMARK_EXTRACTOR_HOST", HOST_HELP)
    port: int = setting(50051, "LANDMARK_EXTRACTOR_PORT", PORT_HELP)
    metrics_port: int = setting(9151, "LANDMARK_EXTRACTOR_METRICS_PORT", METRICS_PORT_HELP)
    max_rpcs: int = setting(16, "LANDMARK_EXTRACTOR_MAX_RPCS", MAX_RPCS_HELP)
    # aliked: learned features, the better answers (docs/quality.md); sift: ~3x cheaper on a CPU.
    backend: str = setting("aliked", "LANDMARK_BACKEND", f"feature backend: {', '.join(NAMES)}")
    max_concurrent: int = setting(
        2,
        "LANDMARK_EXTRACTOR_CONCURRENCY",
        "extractions running at once; other calls (up to max-rpcs) wait their turn",
    )
    max_features: int = setting(1000, "LANDMARK_MAX_FEATURES", "keypoints per image by default")
    max_features_limit: int = setting(
        10000, "LANDMARK_MAX_FEATURES_LIMIT", "most keypoints a request may ask for"
    )
    max_image_size: int = setting(
        1024, "LANDMARK_MAX_IMAGE_SIZE", "longer side in pixels photos are resized to by default"
    )
    max_pixels: int = setting(40_000_000, "LANDMARK_MAX_PIXELS", "largest decoded image, in pixels")
    max_image_bytes: int = setting(32 << 20, "LANDMARK_MAX_IMAGE_BYTES", "largest upload in bytes")
    delf_model: str = setting(
        "", "LANDMARK_DELF_MODEL", "delf: TF-Hub handle or local folder holding the module"
    )
    delf_score_threshold: float = setting(
        DelfSettings.score_threshold,
        "LANDMARK_DELF_THRESHOLD",
        "delf: attention score a keypoint needs",
    )
    delf_scales: tuple[float, ...] = setting(
        (), "LANDMARK_DELF_SCALES", "delf: image scales, comma-separated (empty = the module's)"
    )
    aliked_variant: str = setting(
        AlikedSettings.variant, "LANDMARK_ALIKED_VARIANT", "aliked: model variant t16, n16 or n32"
    )
    aliked_model_dir: str = setting(
        "",
        "LANDMARK_ALIKED_MODEL_DIR",
        "aliked: folder of model files with their SHA256SUMS (empty = those shipped)",
    )
    aliked_head: str = setting(
        AlikedSettings.head,
        "LANDMARK_ALIKED_HEAD",
        "aliked: onnx (the whole extraction in one graph) or numpy (the previous path: "
        "detection and descriptor head in numpy)",
    )
    aliked_threads: int = setting(
        0,
        "LANDMARK_ALIKED_THREADS",
        "aliked: ONNX Runtime threads per extraction (0 = cores / max-concurrent: the "
        "extractions at once share the cores)",
    )
    batch_size: int = setting(
        1,
        "LANDMARK_EXTRACTOR_BATCH_SIZE",
        "aliked: most photos of one size run as one batch (1 = no batching; for GPUs)",
    )
    batch_delay_ms: float = setting(
        5.0,
        "LANDMARK_EXTRACTOR_BATCH_DELAY_MS",
        "how long a photo waits for others to fill its batch",
    )
    aliked_threshold: float = setting(
        AlikedSettings.threshold,
        "LANDMARK_ALIKED_THRESHOLD",
        "aliked: detection score a keypoint needs",
    )

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
            "batch_size",
        )
        if self.aliked_threads < 0:
            raise ValueError(f"aliked_threads ({self.aliked_threads}) must not be negative")
        if self.batch_delay_ms < 0:
            raise ValueError(f"batch_delay_ms ({self.batch_delay_ms}) must not be negative")
        if self.batch_size > 1 and self.backend != "aliked":
            raise ValueError(f"batch_size above 1 needs the aliked backend, not {self.backend}")
        if self.batch_size > self.max_concurrent:
            raise ValueError(
                f"batch_size ({self.batch_size}) is above max_concurrent "
                f"({self.max_concurrent}): no batch could fill; raise max_concurrent"
            )
        if self.max_features > self.max_features_limit:
            raise ValueError(
                f"max_features ({self.max_features}) is above max_features_limit "
                f"({self.max_features_limit})"
            )

    def aliked_settings(self) -> AlikedSettings:
        return AlikedSettings(
            variant=self.aliked_variant,
            threshold=self.aliked_threshold,
            head=self.aliked_head,
            threads=self.aliked_threads or max(1, usable_cores() // self.max_concurrent),
            model_dir=Path(self.aliked_model_dir) if self.aliked_model_dir else MODEL_DIR,
        )

    def delf_settings(self) -> DelfSettings:
        return DelfSettings(
            self.delf_model,
            self.delf_score_threshold,
            tuple(self.delf_scales) or DelfSettings.image_scales,
        )
