"""What one search reads: an immutable view of the index, swapped whole on every change.

A view is two parts: the sealed segments (with their removed images), rebuilt only when
the set of segments or of removed images changes (a seal, a merge, a bulk add, a remove),
and the growing buffer, rebuilt on every small add. So the cost of one small add follows
the size of the buffer, which is bounded, not the size of the index."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .codebook import Codebook
from .images import ImageData, ImageMeta
from .segment import Segment


@dataclass(frozen=True)
class Sealed:
    """The sealed segments, numbered: global image numbers and rows run over the segments
    in order. ``dead`` holds the numbers of removed images; ``ids`` the live ones."""

    segments: tuple[Segment, ...] = ()
    image_offsets: tuple[int, ...] = ()  # first global image number of each segment
    row_offsets: tuple[int, ...] = (0,)  # first global row of each segment, then the total
    images: tuple[ImageMeta, ...] = ()
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ids: dict[str, int] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()  # of the live images


def sealed_part(segments: Sequence[Segment], removed: set[tuple[str, str]]) -> Sealed:
    images: list[ImageMeta] = []
    image_offsets, row_offsets, rows = [], [], 0
    dead: list[int] = []
    ids: dict[str, int] = {}
    labels: set[str] = set()
    for seg in segments:
        image_offsets.append(len(images))
        row_offsets.append(rows)
        for m in seg.images:
            if (seg.name, m.image_id) in removed:
                dead.append(len(images))
            else:
                ids[m.image_id] = len(images)
                labels.add(m.label)
            images.append(m)
        rows += seg.rows
    row_offsets.append(rows)
    return Sealed(
        tuple(segments),
        tuple(image_offsets),
        tuple(row_offsets),
        tuple(images),
        np.array(dead, np.int32),
        ids,
        frozenset(labels),
    )


class ImageIds(Mapping[str, int]):
    """image id -> global image number, over the sealed part and the buffer (disjoint:
    an image is in one or the other) without copying either."""

    def __init__(self, sealed: dict[str, int], growing: dict[str, int]) -> None:
        self._sealed, self._growing = sealed, growing

    def __getitem__(self, image_id: str) -> int:
        got = self._growing.get(image_id)
        return self._sealed[image_id] if got is None else got

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._growing or image_id in self._sealed

    def __iter__(self) -> Iterator[str]:
        yield from self._sealed
        yield from self._growing

    def __len__(self) -> int:
        return len(self._sealed) + len(self._growing)


class ImageList(Sequence[ImageMeta]):
    """Every image's metadata by global number: the sealed ones, then the buffer's."""

    def __init__(self, sealed: tuple[ImageMeta, ...], growing: tuple[ImageMeta, ...]) -> None:
        self._sealed, self._growing = sealed, growing

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (int or slice, as a tuple takes)
        if isinstance(i, slice):
            return (self._sealed + self._growing)[i]
        n = len(self._sealed)
        if i < 0:
            i += len(self)
        return self._sealed[i] if i < n else self._growing[i - n]

    def __len__(self) -> int:
        return len(self._sealed) + len(self._growing)


@dataclass(frozen=True)
class View:
    """What one search reads: immutable, swapped whole on every change.

    Global image numbers run over the sealed segments in order, then the growing buffer;
    global rows likewise. ``dead`` holds the global numbers of removed images."""

    backend: str
    dimension: int
    sealed: Sealed
    growing_images: tuple[ImageMeta, ...]
    growing_descriptors: np.ndarray  # [G, D]
    growing_locations: np.ndarray  # [G, 2]
    growing_row_image: np.ndarray  # [G] global image numbers
    growing_ids: dict[str, int]
    generation: int
    codebook: Codebook | None = None  # the words the segments' inverted files use ...
    previous_codebook: Codebook | None = None  # ... or, until merges rewrite them, these

    @cached_property
    def codebooks(self) -> tuple[Codebook, ...]:
        """The words the segments' inverted files use: the current ones, and the previous
        ones while segments built with them remain (found once per view)."""
        used = {s.inverted.codebook_version for s in self.segments if s.inverted is not None}
        books = (self.codebook, self.previous_codebook)
        return tuple(b for b in books if b is not None and b.version in used)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self.sealed.segments

    @property
    def image_offsets(self) -> tuple[int, ...]:
        return self.sealed.image_offsets

    @property
    def row_offsets(self) -> tuple[int, ...]:
        """First global row of each segment, then of the growing buffer."""
        return self.sealed.row_offsets

    @property
    def dead(self) -> np.ndarray:
        return self.sealed.dead

    @property
    def growing_first(self) -> int:
        """Global number of the first growing-buffer image."""
        return len(self.sealed.images)

    @property
    def images(self) -> ImageList:
        return ImageList(self.sealed.images, self.growing_images)

    @property
    def by_id(self) -> ImageIds:
        return ImageIds(self.sealed.ids, self.growing_ids)

    @property
    def live_images(self) -> int:
        return len(self.sealed.ids) + len(self.growing_ids)

    @property
    def label_count(self) -> int:
        """Distinct labels of the live images, in the time of the buffer's (bounded) size."""
        new = {m.label for m in self.growing_images} - self.sealed.labels
        return len(self.sealed.labels) + len(new)

    def features_of(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors [N, D] and (x, y) locations [N, 2] of global image number ``image``."""
        if image < self.growing_first:
            s = bisect.bisect_right(self.image_offsets, image) - 1
            return self.segments[s].features(image - self.image_offsets[s])
        meta = self.growing_images[image - self.growing_first]
        rows = slice(meta.start, meta.start + meta.count)
        return self.growing_descriptors[rows], self.growing_locations[rows]


def build_view(
    sealed: Sealed,
    growing: Mapping[str, ImageData],
    backend: str,
    dimension: int,
    generation: int,
    codebook: Codebook | None = None,
    previous_codebook: Codebook | None = None,
) -> View:
    """The view of the ``sealed`` part and the growing buffer."""
    first = len(sealed.images)
    metas: list[ImageMeta] = []
    ids: dict[str, int] = {}
    g_desc, g_loc, g_img, start = [], [], [], 0
    for im in growing.values():
        number = first + len(metas)
        ids[im.image_id] = number
        g_img.append(np.full(len(im.descriptors), number, np.int32))
        metas.append(im.meta(start))
        g_desc.append(im.descriptors)
        g_loc.append(im.locations)
        start += len(im.descriptors)
    live = bool(ids) or bool(sealed.ids)
    dim = dimension
    return View(
        backend=backend if live else "",
        dimension=dim if live else 0,
        sealed=sealed,
        growing_images=tuple(metas),
        growing_descriptors=np.concatenate(g_desc) if g_desc else np.zeros((0, dim), "f4"),
        growing_locations=np.concatenate(g_loc) if g_loc else np.zeros((0, 2), "f4"),
        growing_row_image=np.concatenate(g_img) if g_img else np.zeros(0, np.int32),
        growing_ids=ids,
        generation=generation,
        codebook=codebook,
        previous_codebook=previous_codebook,
    )
