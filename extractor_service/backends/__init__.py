"""Feature backends, by name. Heavy ones (TensorFlow) are imported only when asked for."""

from __future__ import annotations

from .base import Backend, RawFeatures

NAMES = ("sift",)


def create_backend(name: str) -> Backend:
    """Build the backend called ``name``; ValueError for an unknown name."""
    if name == "sift":
        from .sift import SiftBackend

        return SiftBackend()
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(NAMES)}")


__all__ = ["Backend", "RawFeatures", "NAMES", "create_backend"]
