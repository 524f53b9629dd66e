"""Writing a segment (segment.py has the format): images streamed in, one at a time,
to a temporary folder that is fsynced and renamed into place."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from ..errors import Stopped
from . import inverted
from .codebook import Codebook
from .compact import Covariance, dequantize_descriptors, quantize_descriptors, quantize_locations
from .images import ImageData
from .segment import FORMAT, Segment, load_segment
from .store_settings import PROJECTION_DIM
from .wal import publish_dir

ANNOY_SEED = 1  # the seed of every segment's trees: the same images build the same index


class StoredImages(Sequence[ImageData]):
    """Images of sealed segments, read from their files (Segment.image_data) each time they
    are asked for: a merge passes over them several times without holding them in memory."""

    def __init__(self, where: list[tuple[Segment, int]]) -> None:
        self.where = where

    @classmethod
    def live(cls, segments: list[Segment], removed: set[tuple[str, str]]) -> StoredImages:
        """The images of ``segments`` but the removed ones ((segment name, image id))."""
        return cls(
            [
                (seg, i)
                for seg in segments
                for i, m in enumerate(seg.images)
                if (seg.name, m.image_id) not in removed
            ]
        )

    def __len__(self) -> int:
        return len(self.where)

    def row_count(self) -> int:
        return sum(segment.images[index].count for segment, index in self.where)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (Sequence's overloads)
        if isinstance(i, slice):
            return StoredImages(self.where[i])
        segment, index = self.where[i]
        return segment.image_data(index)


def build_segment(
    images: Sequence[ImageData],
    dimension: int,
    n_trees: int,
    tmp: Path,
    final: Path,
    stopping: Callable[[], bool] = lambda: False,
    projection_dim: int = PROJECTION_DIM,
    codebook: Codebook | None = None,
) -> Segment:
    """Write ``images`` as a segment in ``tmp``, fsync it, rename it to ``final``. With a
    ``codebook``, its first stage is an inverted file (from the rows as stored: what a
    query meets); without, Annoy's trees over its projected rows.

    One image at a time: a first pass writes the int8 descriptors and uint16 locations (and
    the inverted file's entries, or the covariance); without words a second pass adds the
    projections to Annoy. ``stopping`` is polled between images; when it answers True the
    build raises Stopped (the caller deletes ``tmp``). The same images give the same files,
    byte for byte, with one BLAS thread as the service and its build process run
    (blas.single_threaded_blas: with more, the covariance's sums come out in another order):
    Annoy's trees are seeded and built in one thread (with several, the trees come out in
    the order the threads finish)."""
    metas, start = [], 0
    for im in images:
        metas.append(im.meta(start))
        start += metas[-1].count
    total = start
    tmp.mkdir(parents=True, exist_ok=True)
    covariance = Covariance(dimension)
    taken = _carried(images, codebook) if codebook else None
    words = inverted.Builder(codebook) if codebook and taken is None else None

    def quantized() -> Iterator[np.ndarray]:
        for im in images:
            if stopping():
                raise Stopped("shutting down")
            rows = quantize_descriptors(im.descriptors)
            if words:
                words.add(dequantize_descriptors(rows))
            elif taken is None:  # trees over its projected rows
                covariance.add(im.descriptors)
            yield rows

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
    meta = {
        "format": FORMAT,
        "dimension": dimension,
        "descriptors": total,
        "images": [asdict(m) for m in metas],
    }
    if words is not None:
        taken = words.finish()
    if taken is not None:  # shortlisted by its words: no trees over its rows
        inverted.save(taken, tmp / "inverted")
    else:
        meta |= _write_trees(images, covariance, projection_dim, n_trees, tmp, stopping)
    (tmp / "meta.json").write_text(json.dumps(meta))
    publish_dir(tmp, final)
    return load_segment(final)


def _carried(images: Sequence[ImageData], codebook: Codebook) -> inverted.InvertedFile | None:
    """A merge's inverted file taken from its segments' own when every one of them was
    built with ``codebook`` (else None: the build assigns the rows to words again)."""
    if not isinstance(images, StoredImages) or not images.where:
        return None
    numbers: dict[str, tuple[Segment, np.ndarray]] = {}
    for n, (segment, index) in enumerate(images.where):
        got = segment.inverted
        if got is None or got.codebook_version != codebook.version:
            return None
        if segment.name not in numbers:
            numbers[segment.name] = (segment, np.full(len(segment.images), -1, np.int64))
        numbers[segment.name][1][index] = n
    parts = [(seg.inverted, new) for seg, new in numbers.values() if seg.inverted is not None]
    return inverted.carried(parts, codebook.words)


def _write_trees(
    images: Sequence[ImageData],
    covariance: Covariance,
    projection_dim: int,
    n_trees: int,
    tmp: Path,
    stopping: Callable[[], bool],
) -> dict:
    """The projection and Annoy's trees over the projected rows (a segment without
    words); returns what meta.json says of them."""
    projection = covariance.projection(projection_dim)
    np.savez(tmp / "projection.npz", mean=projection.mean, axes=projection.axes)
    annoy = AnnoyIndex(projection.dimension, "euclidean")
    annoy.set_seed(ANNOY_SEED)
    row = 0
    for im in images:
        if stopping():
            raise Stopped("shutting down")
        for vector in projection(im.descriptors):
            annoy.add_item(row, vector)
            row += 1
    if stopping():
        raise Stopped("shutting down")
    annoy.build(n_trees, n_jobs=1)
    if not annoy.save(str(tmp / "index.ann")):
        raise OSError(f"Annoy could not write {tmp / 'index.ann'}")
    annoy.unload()
    return {"projected_dimension": projection.dimension, "metric": "euclidean", "n_trees": n_trees}


def row_count(images: Sequence[ImageData]) -> int:
    """The rows of ``images``, without reading stored images from disk."""
    if isinstance(images, StoredImages):
        return images.row_count()
    return sum(len(im.descriptors) for im in images)


def bytes_needed(
    images: Sequence[ImageData],
    dimension: int,
    n_trees: int,
    projection_dim: int = PROJECTION_DIM,
    words: bool = False,
) -> int:
    """A little more than what ``build_segment`` writes for ``images``: D + 4 bytes of row
    data; with ``words`` an inverted file (at most one entry of 4 + D/8 bytes per row),
    else Annoy's nodes: one of 16 + 4·P bytes per row plus its trees' leaf and split nodes,
    measured at 12-13 bytes per row and tree whatever P."""
    rows = row_count(images)
    if words:
        return rows * (dimension + 4 + 4 + (dimension + 7) // 8) + 64 * 1024
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
