"""Shared fixtures: real servers on loopback port 0, real images, real indexes in tmp_path."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server as create_extractor
from landmark_client import ExtractorClient, LandmarkClient, SearchClient
from search_service.config import SearchConfig
from search_service.server import create_server as create_search

REPO = Path(__file__).resolve().parents[1]
LANDMARKS = (REPO / ".." / "shared" / "data" / "landmarks").resolve()


def sample_photo(name: str = "astronaut.png") -> Path:
    """A real photograph shipped inside scikit-image (no download)."""
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def encode(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def other_view(name: str = "astronaut.png") -> Image.Image:
    """A second photo of what ``sample_photo(name)`` shows, not a copy of it: turned 10
    degrees, cropped and scaled to 80%."""
    img = Image.open(sample_photo(name)).convert("RGB")
    view = img.rotate(10).crop((20, 20, img.width - 40, img.height - 30))
    return view.resize((view.width * 4 // 5, view.height * 4 // 5), Image.Resampling.LANCZOS)


def two_view_gallery(root: Path, names: tuple[str, ...] = ("astronaut.png", "coffee.png")) -> Path:
    """root/<label>/a.png (the photo) and b.png (another view of it), one label per name."""
    for name in names:
        folder = root / name.split(".")[0]
        folder.mkdir(parents=True)
        Image.open(sample_photo(name)).convert("RGB").save(folder / "a.png")
        other_view(name).save(folder / "b.png")
    return root


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return np.asarray(Image.open(sample_photo()).convert("RGB"))


@pytest.fixture(scope="session")
def landmarks_dir() -> Path:
    if not (LANDMARKS / "manifest.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LANDMARKS} must be present in CI")
        pytest.skip(f"{LANDMARKS} is not present")
    return LANDMARKS


@pytest.fixture(scope="session")
def extractor_server():
    # SIFT: these tests exercise the service, not the features, and SIFT is the fast one.
    # The aliked backend has its own tests (unit, service and the end-to-end evaluation).
    server, port, _ = create_extractor(
        ExtractorConfig(port=0, metrics_port=0, max_pixels=30_000_000, backend="sift")
    )
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture()
def search_server(tmp_path):
    server, port, engine = create_search(
        SearchConfig(port=0, metrics_port=0, index_dir=str(tmp_path / "index"))
    )
    yield f"127.0.0.1:{port}"
    server.stop(0)
    engine.close()


@pytest.fixture()
def extractor(extractor_server):
    with ExtractorClient(extractor_server, timeout=60) as client:
        yield client


@pytest.fixture()
def search(search_server):
    with SearchClient(search_server, timeout=60) as client:
        yield client


@pytest.fixture()
def landmark(extractor_server, search_server):
    with LandmarkClient(extractor_server, search_server, timeout=60) as client:
        yield client
