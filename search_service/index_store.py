"""The index on disk and in memory.

An index directory holds generations; each is a complete, immutable snapshot:

    INDEX_DIR/CURRENT              name of the live generation, replaced atomically
    INDEX_DIR/gen-00000042/        meta.json, descriptors.npy, locations.npy,
                                   row_image.npy, index.ann (Annoy, euclidean)

Annoy row r is row r of descriptors.npy / locations.npy; row_image[r] is the index of
its image in meta.json's list, and r - image.start is the keypoint number in that image.
A generation is written in a temporary directory, fsynced, renamed, and only then named
in CURRENT, so a crash mid-write never leaves a half-written generation live.
Files are opened with mmap, so several processes can share one generation's pages.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from .errors import IndexCorrupt

log = logging.getLogger(__name__)

FORMAT = 1
CURRENT = "CURRENT"


@dataclass(frozen=True)
class ImageMeta:
    image_id: str
    label: str
    start: int  # first row in the index
    count: int  # number of keypoints
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


@dataclass
class Snapshot:
    """An immutable generation: what a search reads. Swapped whole, never edited."""

    generation: int
    backend: str
    dimension: int
    images: list[ImageMeta]
    descriptors: np.ndarray  # [N, D] float32 (mmap)
    locations: np.ndarray  # [N, 2] float32 (mmap)
    row_image: np.ndarray  # [N] int32
    annoy: AnnoyIndex | None
    n_trees: int
    path: Path | None = None
    by_id: dict[str, int] = field(init=False)
    image_sizes: np.ndarray = field(init=False)  # [images, 2] (width, height)

    def __post_init__(self) -> None:
        self.by_id = {m.image_id: i for i, m in enumerate(self.images)}
        self.image_sizes = np.array([(m.width, m.height) for m in self.images], np.float32).reshape(
            -1, 2
        )

    @property
    def num_descriptors(self) -> int:
        return int(self.row_image.shape[0])

    def bytes_on_disk(self) -> int:
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def image_data(self, index: int) -> ImageData:
        m = self.images[index]
        rows = slice(m.start, m.start + m.count)
        return ImageData(
            m.image_id,
            m.label,
            np.asarray(self.descriptors[rows]),
            np.asarray(self.locations[rows]),
            m.width,
            m.height,
            dict(m.metadata),
        )


def empty_snapshot() -> Snapshot:
    return Snapshot(
        0,
        "",
        0,
        [],
        np.zeros((0, 0), np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.int32),
        None,
        0,
    )


def build_snapshot(
    images: list[ImageData],
    backend: str,
    dimension: int,
    generation: int,
    n_trees: int,
    workdir: Path,
) -> Snapshot:
    """Build the arrays and the Annoy index for ``images`` into ``workdir`` (fsynced)."""
    metas, start = [], 0
    for im in images:
        metas.append(
            ImageMeta(
                im.image_id,
                im.label,
                start,
                len(im.descriptors),
                im.width,
                im.height,
                dict(im.metadata),
            )
        )
        start += len(im.descriptors)
    total = start
    workdir.mkdir(parents=True, exist_ok=True)

    # Written straight into the files (no second copy in memory).
    def out(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.lib.format.open_memmap(workdir / f"{name}.npy", "w+", dtype, shape)

    descriptors = out("descriptors", (total, dimension), np.float32)
    locations = out("locations", (total, 2), np.float32)
    row_image = out("row_image", (total,), np.int32)
    for i, (m, im) in enumerate(zip(metas, images, strict=True)):
        descriptors[m.start : m.start + m.count] = im.descriptors
        locations[m.start : m.start + m.count] = im.locations
        row_image[m.start : m.start + m.count] = i
    for arr in (descriptors, locations, row_image):
        arr.flush()
    annoy = None
    if total:
        annoy = AnnoyIndex(dimension, "euclidean")
        for row in range(total):
            annoy.add_item(row, descriptors[row])
        annoy.build(n_trees, n_jobs=-1)
        annoy.save(str(workdir / "index.ann"))  # save() re-opens the file with mmap
    meta = {
        "format": FORMAT,
        "generation": generation,
        "backend": backend,
        "dimension": dimension,
        "metric": "euclidean",
        "n_trees": n_trees,
        "descriptors": total,
        "images": [m.__dict__ for m in metas],
    }
    _write_json(workdir / "meta.json", meta)
    for p in workdir.iterdir():
        _fsync_file(p)
    _fsync_dir(workdir)
    return _open(workdir, meta, annoy)


def commit(index_dir: Path, snapshot_dir: Path, generation: int) -> Path:
    """Make a built generation live: rename into place, then point CURRENT at it."""
    final = index_dir / f"gen-{generation:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(snapshot_dir, final)
    _fsync_dir(index_dir)
    tmp = index_dir / f".{CURRENT}.tmp"
    with open(tmp, "w") as fh:
        fh.write(final.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / CURRENT)
    _fsync_dir(index_dir)
    return final


def remove_stale(index_dir: Path, keep: str) -> None:
    """Delete generations and temporary directories other than ``keep``.

    Open mmaps of a deleted generation stay valid on POSIX until they are closed."""
    for p in index_dir.iterdir():
        if (
            p.is_dir()
            and p.name != keep
            and (p.name.startswith("gen-") or p.name.startswith(".tmp"))
        ):
            shutil.rmtree(p, ignore_errors=True)


def new_workdir(index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-gen-", dir=index_dir))


def load(index_dir: Path) -> Snapshot:
    """Open the live generation of ``index_dir`` (an empty snapshot when there is none)."""
    pointer = index_dir / CURRENT
    if not pointer.exists():
        return empty_snapshot()
    name = pointer.read_text().strip()
    path = index_dir / name
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{path}: cannot read meta.json ({exc})") from None
    if meta.get("format") != FORMAT:
        raise IndexCorrupt(f"{path}: index format {meta.get('format')} is not {FORMAT}")
    annoy = None
    if meta["descriptors"]:
        annoy = AnnoyIndex(int(meta["dimension"]), meta["metric"])
        try:
            annoy.load(str(path / "index.ann"))
        except OSError as exc:
            raise IndexCorrupt(f"{path}: cannot load index.ann ({exc})") from None
    return _open(path, meta, annoy)


def _open(path: Path, meta: dict, annoy: AnnoyIndex | None) -> Snapshot:
    def arr(name: str) -> np.ndarray:
        return np.load(path / f"{name}.npy", mmap_mode="r" if meta["descriptors"] else None)

    snap = Snapshot(
        generation=int(meta["generation"]),
        backend=meta["backend"],
        dimension=int(meta["dimension"]),
        images=[ImageMeta(**m) for m in meta["images"]],
        descriptors=arr("descriptors"),
        locations=arr("locations"),
        row_image=np.asarray(arr("row_image")),
        annoy=annoy,
        n_trees=int(meta["n_trees"]),
        path=path,
    )
    if snap.descriptors.shape != (meta["descriptors"], snap.dimension) or (
        snap.row_image.shape[0] != meta["descriptors"]
    ):
        raise IndexCorrupt(f"{path}: array sizes disagree with meta.json")
    return snap


def _write_json(path: Path, obj: dict) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)
