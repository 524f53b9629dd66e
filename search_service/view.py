"""What one search reads: an immutable view of the index, swapped whole on every change."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .segment import ImageData, ImageMeta, Segment


@dataclass(frozen=True)
class View:
    """What one search reads: immutable, swapped whole on every change.

    Global image numbers run over the sealed segments in order, then the growing buffer;
    global rows likewise. ``dead`` holds the global numbers of removed images."""

    backend: str
    dimension: int
    segments: tuple[Segment, ...]
    image_offsets: tuple[int, ...]  # first global image number of each segment
    row_offsets: tuple[int, ...]  # first global row of each segment (+ growing at the end)
    images: tuple[ImageMeta, ...]
    growing_descriptors: np.ndarray  # [G, D]
    growing_locations: np.ndarray  # [G, 2]
    growing_row_image: np.ndarray  # [G] global image numbers
    dead: np.ndarray  # global image numbers
    generation: int
    by_id: dict[str, int] = field(default_factory=dict)
    growing_first: int = 0  # global number of the first growing-buffer image

    @property
    def live_images(self) -> int:
        return len(self.by_id)

    def features_of(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors [N, D] and (x, y) locations [N, 2] of global image number ``image``."""
        if image < self.growing_first:
            s = bisect.bisect_right(self.image_offsets, image) - 1
            return self.segments[s].features(image - self.image_offsets[s])
        meta = self.images[image]
        rows = slice(meta.start, meta.start + meta.count)
        return self.growing_descriptors[rows], self.growing_locations[rows]


def build_view(
    segments: list[Segment],
    removed: set[tuple[str, str]],
    growing: dict[str, ImageData],
    backend: str,
    dimension: int,
    generation: int,
) -> View:
    """The view of sealed ``segments`` (less the ``removed`` images) and the growing buffer."""
    images: list[ImageMeta] = []
    image_offsets, row_offsets, rows = [], [], 0
    dead = []
    by_id: dict[str, int] = {}
    for seg in segments:
        image_offsets.append(len(images))
        row_offsets.append(rows)
        for m in seg.images:
            if (seg.name, m.image_id) in removed:
                dead.append(len(images))
            else:
                by_id[m.image_id] = len(images)
            images.append(m)
        rows += seg.rows
    row_offsets.append(rows)
    growing_first = len(images)
    g_desc, g_loc, g_img, start = [], [], [], 0
    for im in growing.values():
        by_id[im.image_id] = len(images)
        g_img.append(np.full(len(im.descriptors), len(images), np.int32))
        images.append(im.meta(start))
        g_desc.append(im.descriptors)
        g_loc.append(im.locations)
        start += len(im.descriptors)
    dim = dimension
    return View(
        backend=backend if by_id else "",
        dimension=dim if by_id else 0,
        segments=tuple(segments),
        image_offsets=tuple(image_offsets),
        row_offsets=tuple(row_offsets),
        images=tuple(images),
        growing_descriptors=np.concatenate(g_desc) if g_desc else np.zeros((0, dim), "f4"),
        growing_locations=np.concatenate(g_loc) if g_loc else np.zeros((0, 2), "f4"),
        growing_row_image=np.concatenate(g_img) if g_img else np.zeros(0, np.int32),
        dead=np.array(dead, np.int32),
        generation=generation,
        by_id=by_id,
        growing_first=growing_first,
    )
