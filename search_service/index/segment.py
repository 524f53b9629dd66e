"""A sealed segment: immutable, mmap-loaded rows of some images, and its first stage.

    seg-000042/  meta.json          format, dimensions, the images (id, label, metadata,
                                    first row, keypoint count, size)
                 descriptors.npy    [N, D] int8     } row r of these is Annoy item r
                 locations.npy      [N, 2] uint16   }
                 inverted/          its images' words (inverted.py), when the index has
                                    words; or, when it had none yet:
                 projection.npz     mean [D] and axes [D, P] of the PCA projection
                 index.ann          Annoy (euclidean) over the P-D projections

compact.py says how the rows are stored. A search reads the rows and locations of the
images its shortlist chose only; a segment with words is shortlisted by them, without a
look at its rows. Formats 2 (float32 rows, a row_image.npy, Annoy over the full
descriptors) and 3 (format 4 with trees, before words) are read as they are: the next merge
rewrites their images in format 4. A segment is written (segment_writer.py) in a temporary
folder, fsynced, then renamed; it becomes live only when the manifest names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from ..errors import IndexCorrupt
from . import inverted as inverted_file
from .compact import (
    Projection,
    dequantize_descriptors,
    dequantize_locations,
)
from .images import ImageData, ImageMeta

FORMAT = 4
READABLE = (2, 3, 4)


@dataclass
class Segment:
    name: str
    path: Path
    dimension: int
    images: list[ImageMeta]
    descriptors: np.ndarray  # [N, D] int8 (format 2: float32), mapped
    locations: np.ndarray  # [N, 2] uint16 (format 2: float32), mapped
    starts: np.ndarray  # [images] first row of each image, ascending
    annoy: AnnoyIndex | None  # None: shortlisted by its words (inverted)
    projection: Projection | None  # None: Annoy holds the full descriptors (format 2)
    size: int = 0  # bytes of its files, measured when loaded (they never change)
    inverted: inverted_file.InvertedFile | None = None  # written when the index had words

    @cached_property
    def ids(self) -> set[str]:
        """Its images' ids."""
        return {m.image_id for m in self.images}

    @property
    def rows(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def compact(self) -> bool:
        return self.descriptors.dtype == np.int8

    def bytes_on_disk(self) -> int:
        return self.size

    def bytes_in_memory(self) -> int:
        """What searches keep resident: its inverted file, which every search reads; or,
        without words, Annoy's trees and the rows its candidates are ranked by. The rest
        (rows of a segment with words, locations) is read for shortlisted images only."""
        if self.inverted is not None:
            return self.inverted.nbytes()
        trees = (self.path / "index.ann").stat().st_size
        return trees + int(self.descriptors.nbytes)

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
        return self._decode(m, self.descriptors[rows], self.locations[rows])

    def image_data(self, index: int) -> ImageData:
        """One image's features, read from the segment's files with ordinary reads rather
        than through the mappings searches use: a merge streams millions of rows through
        here, and touched mapped pages would count as the process's resident memory
        (read pages stay in the page cache, which the kernel reclaims)."""
        m = self.images[index]
        descriptors, locations = self._decode(
            m,
            _read_rows(self.path / "descriptors.npy", self.descriptors, m.start, m.count),
            _read_rows(self.path / "locations.npy", self.locations, m.start, m.count),
        )
        return ImageData(
            m.image_id, m.label, descriptors, locations, m.width, m.height, dict(m.metadata)
        )

    def _decode(
        self, m: ImageMeta, descriptors: np.ndarray, locations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.compact:
            return np.asarray(descriptors, np.float32), np.asarray(locations, np.float32)
        return (
            dequantize_descriptors(descriptors),
            dequantize_locations(locations, (m.width, m.height)),
        )


def _read_rows(path: Path, mapped: np.ndarray, start: int, count: int) -> np.ndarray:
    """Rows [start, start + count) of the .npy file ``path``, mapped as ``mapped``."""
    width = int(np.prod(mapped.shape[1:]))
    with open(path, "rb") as fh:
        fh.seek(int(mapped.offset) + start * width * mapped.dtype.itemsize)
        rows = np.fromfile(fh, mapped.dtype, count * width)
    if rows.size != count * width:
        raise IndexCorrupt(f"{path}: shorter than its header says")
    return rows.reshape(count, *mapped.shape[1:])


def load_segment(path: Path) -> Segment:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") not in READABLE:
            raise IndexCorrupt(
                f"{path}: segment format {meta.get('format')} is not one this service reads"
            )
        compact = meta["format"] >= 3
        projection = None
        if compact and (path / "projection.npz").exists():
            with np.load(path / "projection.npz", allow_pickle=False) as npz:
                projection = Projection(npz["mean"], npz["axes"])
        annoy = None
        if not (path / "inverted").is_dir():
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
            projection=projection,
            size=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
            inverted=(
                inverted_file.load(path / "inverted", len(images))
                if (path / "inverted").is_dir()
                else None
            ),
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
        or (annoy is not None and annoy.get_n_items() != meta["descriptors"])
    ):
        raise IndexCorrupt(f"{path}: array sizes disagree with meta.json")
    return seg
