"""Feature backends, by name. Heavy libraries (TensorFlow, ONNX Runtime) are imported only
when a backend that needs them is built."""

from __future__ import annotations

from .aliked import AlikedSettings
from .base import Backend, RawFeatures
from .delf import DelfSettings

NAMES = ("sift", "aliked", "delf")


def create_backend(
    name: str, aliked: AlikedSettings | None = None, delf: DelfSettings | None = None
) -> Backend:
    """Build the backend called ``name`` (with its settings; the defaults are the settings
    classes'); ValueError for an unknown name."""
    if name == "sift":
        from .sift import SiftBackend

        return SiftBackend()
    if name == "aliked":
        from .aliked import AlikedBackend  # imports ONNX Runtime

        return AlikedBackend(aliked or AlikedSettings())
    if name == "delf":
        from .delf import DelfBackend  # imports TensorFlow

        return DelfBackend(delf or DelfSettings(""))
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(NAMES)}")


__all__ = ["AlikedSettings", "Backend", "DelfSettings", "NAMES", "RawFeatures", "create_backend"]
