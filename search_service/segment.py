"""A sealed segment: an immutable, mmap-loaded Annoy index over some images' descriptors.

    seg-000042/  meta.json  descriptors.npy  locations.npy  row_image.npy  index.ann

Annoy row r is row r of the .npy files; row_image[r] is the image's number within the
segment, and r - image.start its keypoint number. A segment is written in a temporary
folder, fsynced, then renamed; it becomes live only when the manifest names it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from .errors import IndexCorrupt
from .wal import fsync_dir

FORMAT = 2


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
    descriptors: np.ndarray  # [N, D] (mmap)
    locations: np.ndarray  # [N, 2] (mmap)
    row_image: np.ndarray  # [N] int32
    annoy: AnnoyIndex
    n_trees: int

    @property
    def rows(self) -> int:
        return int(self.row_image.shape[0])

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def image_data(self, index: int) -> ImageData:
        """One image's features as views of the segment's mapped files: a merge streams
        them into the new segment without holding the old ones in memory."""
        m = self.images[index]
        rows = slice(m.start, m.start + m.count)
        return ImageData(
            m.image_id,
            m.label,
            self.descriptors[rows],
            self.locations[rows],
            m.width,
            m.height,
            dict(m.metadata),
        )


class Stopped(Exception):
    """The build was asked to stop (the service is shutting down); nothing was kept."""


def build_segment(
    images: list[ImageData],
    dimension: int,
    n_trees: int,
    tmp: Path,
    final: Path,
    stopping: Callable[[], bool] = lambda: False,
) -> Segment:
    """Write ``images`` as a segment in ``tmp``, fsync it, rename it to ``final``.

    ``stopping`` is polled between images; when it answers True the build raises Stopped
    (the caller deletes ``tmp``)."""
    metas, start = [], 0
    for im in images:
        metas.append(im.meta(start))
        start += len(im.descriptors)
    total = start
    tmp.mkdir(parents=True, exist_ok=True)
    # Ordinary writes, not memory-mapped files: on a full disk a write fails with an
    # OSError the store can handle, where a store into a sparse mapping kills the process
    # with SIGBUS.
    _write_rows(
        tmp / "descriptors.npy", np.float32, (total, dimension), [im.descriptors for im in images]
    )
    _write_rows(tmp / "locations.npy", np.float32, (total, 2), [im.locations for im in images])
    _write_rows(
        tmp / "row_image.npy",
        np.int32,
        (total,),
        [np.full(m.count, i, np.int32) for i, m in enumerate(metas)],
    )
    annoy = AnnoyIndex(dimension, "euclidean")
    row = 0
    for im in images:
        if stopping():
            raise Stopped("shutting down")
        for vector in np.asarray(im.descriptors, np.float32):
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


def bytes_needed(images: list[ImageData], dimension: int, n_trees: int) -> int:
    """About what ``build_segment`` writes for ``images``: the arrays, and Annoy's nodes
    (one per row plus about one split node per row and tree)."""
    rows = sum(len(im.descriptors) for im in images)
    node = 12 + 4 * dimension
    return rows * (4 * dimension + 8 + 4) + rows * node * 2 + 64 * 1024 * (1 + n_trees)


def _write_rows(path: Path, dtype: type, shape: tuple[int, ...], chunks: list[np.ndarray]) -> None:
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
        if meta.get("format") != FORMAT:
            raise IndexCorrupt(f"{path}: segment format {meta.get('format')} is not {FORMAT}")
        annoy = AnnoyIndex(int(meta["dimension"]), meta["metric"])
        annoy.load(str(path / "index.ann"))  # mmap: shared between processes
        seg = Segment(
            name=path.name,
            path=path,
            dimension=int(meta["dimension"]),
            images=[ImageMeta(**m) for m in meta["images"]],
            descriptors=np.load(path / "descriptors.npy", mmap_mode="r", allow_pickle=False),
            locations=np.load(path / "locations.npy", mmap_mode="r", allow_pickle=False),
            row_image=np.load(path / "row_image.npy", allow_pickle=False),
            annoy=annoy,
            n_trees=int(meta["n_trees"]),
        )
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path}: cannot load segment ({exc})") from None
    if (
        seg.descriptors.shape != (meta["descriptors"], seg.dimension)
        or seg.rows != (meta["descriptors"])
        or annoy.get_n_items() != meta["descriptors"]
    ):
        raise IndexCorrupt(f"{path}: array sizes disagree with meta.json")
    return seg
