"""The growing buffer: images added through the log and not yet sealed, searched exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from landmark.wire import Features

from .compact import (
    dequantize_descriptors,
    dequantize_locations,
    quantize_descriptors,
    quantize_locations,
)
from .images import ImageData


def image_data(image_id: str, label: str, metadata: dict, f: Features) -> ImageData:
    """An image as the index keeps it: descriptors and locations already in the form a
    sealed segment reads back (int8 rows, uint16 positions), so that the image scores the
    same in the buffer as after its seal."""
    w, h = (int(v) for v in f.image_size)  # numpy integers would not go into meta.json
    descriptors = dequantize_descriptors(quantize_descriptors(f.descriptors))
    locations = dequantize_locations(quantize_locations(f.locations, (w, h)), (w, h))
    return ImageData(image_id, label, descriptors, locations, w, h, dict(metadata))


class GrowingBuffer(dict[str, ImageData]):
    """image id -> its data, in the order added; ``descriptors`` counts their rows and
    ``since`` is when the oldest came (time.monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.descriptors = 0
        self.since = 0.0

    def put(self, im: ImageData) -> None:
        if not self:
            self.since = time.monotonic()
        self.drop(im.image_id)
        self.descriptors += len(im.descriptors)
        self[im.image_id] = im

    def drop(self, image_id: str) -> None:
        old = self.pop(image_id, None)
        if old is not None:
            self.descriptors -= len(old.descriptors)


@dataclass(frozen=True)
class BufferToSeal:
    """What one seal turns into a segment: the buffer's images when it began, the logs
    that hold them, the new segment's name and the index's feature dimension."""

    images: list[ImageData]
    logs: list[Path]
    name: str
    dimension: int
