"""The aliked backend behind the real extractor service, with a real search index."""

import io
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from extractor_service.backends.aliked import (
    MODEL_DIR,
    AlikedBackend,
    AlikedLoadError,
    AlikedSettings,
)
from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server
from landmark_client import ExtractorClient, ImageToAdd, LandmarkError, SearchClient
from tests.conftest import sample_photo


@pytest.fixture(scope="module")
def aliked_server():
    server, port, _ = create_server(ExtractorConfig(port=0, metrics_port=0, backend="aliked"))
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_extract_index_search_over_grpc(aliked_server, search_server):
    with ExtractorClient(aliked_server, timeout=60) as ex, SearchClient(search_server) as search:
        assert ex.health() == "SERVING"
        info = ex.info()
        assert (info.backend, info.dimension, info.device) == ("aliked", 128, "CPU")
        f = ex.extract(sample_photo("coffee.png"), max_features=300)
        assert f.backend == "aliked" and f.dimension == 128 and len(f) == 300
        assert f.image_size == (600, 400) and f.locations[:, 0].max() < 600
        gallery = {name: sample_photo(f"{name}.png") for name in ("astronaut", "coffee", "camera")}
        items = list(ex.extract_many(gallery.items()))
        search.add_images([ImageToAdd(i.request_id, i.request_id, i.features) for i in items])
        result = search.search(ex.extract(sample_photo("coffee.png"), max_image_size=512))
        assert result.label == "coffee" and result.min_inliers == 9
        assert search.index_info().backend == "aliked"


def test_per_request_threshold_is_checked(aliked_server):
    with ExtractorClient(aliked_server, timeout=60) as ex:
        assert len(ex.extract(sample_photo(), score_threshold=0.5)) > 0
        with pytest.raises(LandmarkError, match="must be in") as err:
            ex.extract(sample_photo(), score_threshold=3.0)
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_calls_run_as_one_batch_with_the_features_of_single_calls(aliked_server):
    config = ExtractorConfig(
        port=0,
        metrics_port=0,
        backend="aliked",
        batch_size=3,
        max_concurrent=3,
        batch_delay_ms=10_000,
    )
    server, port, servicer = create_server(config)
    names = ("astronaut.png", "coffee.png", "chelsea.png")
    photos = [_resized(sample_photo(name)) for name in names]
    try:
        with ExtractorClient(f"127.0.0.1:{port}", timeout=60) as batched:
            with ThreadPoolExecutor(3) as pool:
                got = list(pool.map(lambda p: batched.extract(p, max_features=300), photos))
        assert servicer.core.backend.batcher.batches == {3: 1}
    finally:
        server.stop(0)
    with ExtractorClient(aliked_server, timeout=60) as single:
        for photo, features in zip(photos, got, strict=True):
            alone = single.extract(photo, max_features=300)
            assert len(features) == len(alone) == 300
            np.testing.assert_allclose(features.locations, alone.locations, atol=1e-3)
            np.testing.assert_allclose(features.descriptors, alone.descriptors, atol=1e-5)


def _resized(path) -> bytes:
    """The photo at 480 x 360, so that every photo has one size and can share a batch."""
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as img:
        img.convert("RGB").resize((480, 360)).save(buf, format="PNG")
    return buf.getvalue()


def _serve(*flags: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "extractor_service", "--port", "0", "--backend", "aliked"]
    return subprocess.run([*argv, *flags], capture_output=True, text=True, timeout=120)


def test_serve_with_a_damaged_model_exits_with_what_to_do(tmp_path):
    model_dir = tmp_path / "aliked"
    shutil.copytree(MODEL_DIR, model_dir)
    graph = model_dir / "aliked-n16-extract.onnx"
    damaged = bytearray(graph.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    graph.write_bytes(bytes(damaged))
    with pytest.raises(AlikedLoadError, match="is damaged: its SHA-256 is"):
        AlikedBackend(AlikedSettings(variant="n16", model_dir=model_dir))
    proc = _serve("--aliked-model-dir", str(model_dir))
    assert proc.returncode == 1, proc.stderr
    assert f"model file {graph} is damaged" in proc.stderr, proc.stderr
    assert "make export-aliked" in proc.stderr and "Traceback" not in proc.stderr
    graph.unlink()
    proc = _serve("--aliked-model-dir", str(model_dir))
    assert proc.returncode == 1 and f"model file {graph} is missing" in proc.stderr, proc.stderr


def test_serve_with_an_unknown_variant_exits_with_the_choices():
    proc = _serve("--aliked-variant", "n64")
    assert proc.returncode == 1, proc.stderr
    assert "unknown ALIKED variant 'n64'; choose one of t16, n16, n32" in proc.stderr
    assert "Traceback" not in proc.stderr
