"""An image as the index holds it: its entry (ImageMeta: where its rows are, its size, label
and metadata) and its features ready to be stored (ImageData). Read by searches as well."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ImageMeta:
    image_id: str
    label: str
    start: int  # first row within its segment (or within the growing buffer)
    count: int  # keypoints
    width: int
    height: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageData:
    """One image's features, ready to be stored."""

    image_id: str
    label: str
    descriptors: np.ndarray  # [n, D] float32
    locations: np.ndarray  # [n, 2] float32 (x, y)
    width: int
    height: int
    metadata: dict[str, str] = field(default_factory=dict)

    def meta(self, start: int) -> ImageMeta:
        """Its entry in a segment or in the growing buffer, whose rows begin at ``start``."""
        n = len(self.descriptors)
        return ImageMeta(
            self.image_id, self.label, start, n, self.width, self.height, dict(self.metadata)
        )
