"""Labeled photo folders: DIR/<label>/<file> or DIR/images/<label>/<file>."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class GalleryImage:
    image_id: str  # path relative to the gallery folder, with "/" separators
    label: str  # the name of the folder holding the file
    path: Path


DISTRACTOR_LABEL = "distractor"  # photos of none of the landmarks: queries, never answers


def scan(folder: str | Path) -> list[GalleryImage]:
    """The images of a labeled folder, sorted by id. ValueError when there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    base = root / "images" if (root / "images").is_dir() else root
    found = []
    for path in sorted(base.glob("*/*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(GalleryImage(path.relative_to(root).as_posix(), path.parent.name, path))
    if not found:
        raise ValueError(
            f"no images in {root}: expected {root}/<label>/<file> or {root}/images/<label>/<file> "
            f"with suffixes {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return found
