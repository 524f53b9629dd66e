"""Feature backends, by name. Heavy ones (TensorFlow, ONNX Runtime) are imported only when
asked for."""

from __future__ import annotations

from .base import Backend, RawFeatures

NAMES = ("sift", "aliked", "delf")


def create_backend(
    name: str,
    delf_model: str = "",
    delf_score_threshold: float = 100.0,
    delf_scales: tuple[float, ...] = (),
    aliked_variant: str = "n16",
    aliked_threshold: float = 0.2,
) -> Backend:
    """Build the backend called ``name``; ValueError for an unknown name."""
    if name == "sift":
        from .sift import SiftBackend

        return SiftBackend()
    if name == "aliked":
        from .aliked import AlikedBackend, AlikedSettings  # imports ONNX Runtime

        return AlikedBackend(AlikedSettings(variant=aliked_variant, threshold=aliked_threshold))
    if name == "delf":
        from .delf import DEFAULT_SCALES, DelfBackend, DelfSettings  # imports TensorFlow

        return DelfBackend(
            DelfSettings(delf_model, delf_score_threshold, tuple(delf_scales) or DEFAULT_SCALES)
        )
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(NAMES)}")


__all__ = ["Backend", "RawFeatures", "NAMES", "create_backend"]
