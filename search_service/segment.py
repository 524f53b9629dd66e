"""A sealed segment: an immutable, mmap-loaded Annoy index over some images' descriptors.

    seg-000042/  meta.json          format, dimensions, trees, the images (id, label,
                                    metadata, first row, keypoint count, size)
                 descriptors.npy    [N, D] int8     } row r of these is Annoy item r
                 locations.npy      [N, 2] uint16   }
                 projection.npz     mean [D] and axes [D, P] of the PCA projection
                 index.ann          Annoy (euclidean) over the P-D projections

compact.py says how the rows are stored. Format 2 (read only: float32 descriptors and
locations, a row_image.npy, Annoy over the full descriptors) loads as it is; the next merge
rewrites its images in format 3. A segment is written in a temporary folder, fsynced, then
renamed; it becomes live only when the manifest names it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from .compact import (
    Covariance,
    Projection,
    dequantize_descriptors,
    dequantize_locations,
    quantize_descriptors,
    quantize_locations,
)
from .errors import IndexCorrupt
from .wal import fsync_dir

FORMAT = 3
READABLE = (2, 3)
PROJECTION_DIM = 16  # Annoy's dimension (docs/index-design.md has the measurements)


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


@dataclass
class Segment:
    name: str
    path: Path
    dimension: int
    images: list[ImageMeta]
    descriptors: np.ndarray  # [N, D] int8 (format 2: float32), mapped
    locations: np.ndarray  # [N, 2] uint16 (format 2: float32), mapped
    starts: np.ndarray  # [images] first row of each image, ascending
    annoy: AnnoyIndex
    n_trees: int
    projection: Projection | None  # None: Annoy holds the full descriptors (format 2)

    @property
    def rows(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def compact(self) -> bool:
        return self.descriptors.dtype == np.int8

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def image_of(self, rows: np.ndarray) -> np.ndarray:
        """The image number (within the segment) of each row."""
        return np.searchsorted(self.starts, rows, side="right") - 1

    def unit_rows(self, rows: np.ndarray) -> np.ndarray:
        """Descriptors of ``rows`` as float32 unit vectors."""
        got = self.descriptors[rows]
        return dequantize_descriptors(got) if self.compact else np.asarray(got, np.float32)

    def features(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors [n, D] and (x, y) locations [n, 2] of image ``index``, as float32."""
        m = self.images[index]
        rows = slice(m.start, m.start + m.count)
        if not self.compact:
            return np.asarray(self.descriptors[rows]), np.asarray(self.locations[rows])
        return (
            dequantize_descriptors(self.descriptors[rows]),
            dequantize_locations(self.locations[rows], (m.width, m.height)),
        )

    def image_data(self, index: int) -> ImageData:
        """One image's features, read from the mapped files: a merge streams them into the
        new segment image by image, without holding the old segments in memory."""
        m = self.images[index]
        descriptors, locations = self.features(index)
        return ImageData(
            m.image_id, m.label, descriptors, locations, m.width, m.height, dict(m.metadata)
        )


class StoredImages(Sequence[ImageData]):
    """Images of sealed segments, read from their mapped files each time they are asked
    for: a merge passes over them several times without holding them in memory."""

    def __init__(self, where: list[tuple[Segment, int]]) -> None:
        self.where = where

    def __len__(self) -> int:
        return len(self.where)

    def row_count(self) -> int:
        return sum(segment.images[index].count for segment, index in self.where)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (Sequence's overloads)
        if isinstance(i, slice):
            return StoredImages(self.where[i])
        segment, index = self.where[i]
        return segment.image_data(index)


class Stopped(Exception):
    """The build was asked to stop (the service is shutting down); nothing was kept."""


def build_segment(
    images: Sequence[ImageData],
    dimension: int,
    n_trees: int,
    tmp: Path,
    final: Path,
    stopping: Callable[[], bool] = lambda: False,
    projection_dim: int = PROJECTION_DIM,
) -> Segment:
    """Write ``images`` as a segment in ``tmp``, fsync it, rename it to ``final``.

    Two passes over the images, one image at a time: the first writes the int8 descriptors
    and uint16 locations and accumulates the covariance, the second adds the projections to
    Annoy. ``stopping`` is polled between images; when it answers True the build raises
    Stopped (the caller deletes ``tmp``)."""
    metas, start = [], 0
    for im in images:
        metas.append(im.meta(start))
        start += metas[-1].count
    total = start
    tmp.mkdir(parents=True, exist_ok=True)
    covariance = Covariance(dimension)

    def quantized() -> Iterator[np.ndarray]:
        for im in images:
            if stopping():
                raise Stopped("shutting down")
            covariance.add(im.descriptors)
            yield quantize_descriptors(im.descriptors)

    # Ordinary writes, not memory-mapped files: on a full disk a write fails with an
    # OSError the store can handle, where a store into a sparse mapping kills the process
    # with SIGBUS.
    _write_rows(tmp / "descriptors.npy", np.int8, (total, dimension), quantized())
    _write_rows(
        tmp / "locations.npy",
        np.uint16,
        (total, 2),
        (quantize_locations(im.locations, (im.width, im.height)) for im in images),
    )
    projection = covariance.projection(projection_dim)
    np.savez(tmp / "projection.npz", mean=projection.mean, axes=projection.axes)
    annoy = AnnoyIndex(projection.dimension, "euclidean")
    row = 0
    for im in images:
        if stopping():
            raise Stopped("shutting down")
        for vector in projection(im.descriptors):
            annoy.add_item(row, vector)
            row += 1
    if stopping():
        raise Stopped("shutting down")
    annoy.build(n_trees, n_jobs=-1)
    if not annoy.save(str(tmp / "index.ann")):
        raise OSError(f"Annoy could not write {tmp / 'index.ann'}")
    annoy.unload()
    meta = {
        "format": FORMAT,
        "dimension": dimension,
        "projected_dimension": projection.dimension,
        "metric": "euclidean",
        "n_trees": n_trees,
        "descriptors": total,
        "images": [asdict(m) for m in metas],
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    for p in tmp.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return load_segment(final)


def bytes_needed(
    images: Sequence[ImageData], dimension: int, n_trees: int, projection_dim: int = PROJECTION_DIM
) -> int:
    """A little more than what ``build_segment`` writes for ``images``: D + 4 bytes of row
    data, and Annoy's nodes: one of 16 + 4·P bytes per row plus its trees' leaf and split
    nodes, measured at 12-13 bytes per row and tree whatever P."""
    rows = (
        images.row_count()
        if isinstance(images, StoredImages)
        else sum(len(im.descriptors) for im in images)
    )
    node = 16 + 4 * min(projection_dim, dimension)
    return rows * (dimension + 4 + node + 14 * n_trees) + 64 * 1024 * (1 + n_trees)


def _write_rows(
    path: Path, dtype: type, shape: tuple[int, ...], chunks: Iterable[np.ndarray]
) -> None:
    """An .npy file of ``shape`` written chunk by chunk, without assembling it in memory."""
    with open(path, "wb") as fh:
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            fh.write(np.ascontiguousarray(chunk, dtype).tobytes())


def load_segment(path: Path) -> Segment:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") not in READABLE:
            raise IndexCorrupt(
                f"{path}: segment format {meta.get('format')} is not one this service reads"
            )
        compact = meta["format"] >= 3
        projection = None
        if compact:
            with np.load(path / "projection.npz", allow_pickle=False) as npz:
                projection = Projection(npz["mean"], npz["axes"])
        annoy_dim = projection.dimension if projection else int(meta["dimension"])
        annoy = AnnoyIndex(annoy_dim, meta["metric"])
        annoy.load(str(path / "index.ann"))  # mmap: shared between processes
        images = [ImageMeta(**m) for m in meta["images"]]
        seg = Segment(
            name=path.name,
            path=path,
            dimension=int(meta["dimension"]),
            images=images,
            descriptors=np.load(path / "descriptors.npy", mmap_mode="r", allow_pickle=False),
            locations=np.load(path / "locations.npy", mmap_mode="r", allow_pickle=False),
            starts=np.array([m.start for m in images], np.int64),
            annoy=annoy,
            n_trees=int(meta["n_trees"]),
            projection=projection,
        )
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path}: cannot load segment ({exc})") from None
    want = np.int8 if compact else np.float32
    if (
        seg.descriptors.shape != (meta["descriptors"], seg.dimension)
        or seg.descriptors.dtype != want
        or seg.locations.shape != (meta["descriptors"], 2)
        or annoy.get_n_items() != meta["descriptors"]
    ):
        raise IndexCorrupt(f"{path}: array sizes disagree with meta.json")
    return seg
