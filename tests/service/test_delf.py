"""The delf backend over gRPC, with a generated stand-in for the TF-Hub module."""

import json
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest

from extractor_service.backends.delf import DelfBackend, DelfLoadError, DelfSettings
from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server
from landmark_client import ExtractorClient, ImageToAdd, LandmarkError, SearchClient
from tests.conftest import encode, other_view, sample_photo, two_view_gallery
from tests.fake_delf import build_fake_delf


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory):
    return str(build_fake_delf(tmp_path_factory.mktemp("delf") / "module"))


@pytest.fixture(scope="module")
def backend(fake_model):
    return DelfBackend(DelfSettings(fake_model))


@pytest.fixture(scope="module")
def delf_server(fake_model):
    server, port, _ = create_server(
        ExtractorConfig(port=0, metrics_port=0, backend="delf", delf_model=fake_model)
    )
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_backend_converts_yx_to_xy(backend):
    wide = np.random.default_rng(0).integers(0, 256, (120, 900, 3), dtype=np.uint8)
    f = backend.extract(wide, 500)
    assert f.descriptors.shape[1] == 40 and len(f.descriptors) > 50
    x, y = f.locations[:, 0], f.locations[:, 1]
    assert x.max() > 300 and x.max() < 900 and y.max() < 120  # (y, x) order would break this
    np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-4)
    assert (np.diff(f.strengths) <= 1e-4).all()


def test_backend_honours_max_features_threshold_and_scales(backend):
    img = np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert len(backend.extract(img, 7).descriptors) == 7
    loose = len(backend.extract(img, 10000, score_threshold=50.0).descriptors)
    strict = len(backend.extract(img, 10000, score_threshold=150.0).descriptors)
    assert loose > strict > 0
    one = backend.extract(img, 10000, image_scales=(1.0,))
    assert set(np.round(one.scales).tolist()) == {64.0}
    with pytest.raises(ValueError, match="image_scales"):
        backend.extract(img, 10, image_scales=(8.0,))


def test_extract_index_search_over_grpc(delf_server, search_server):
    with ExtractorClient(delf_server) as ex, SearchClient(search_server) as search:
        assert ex.health() == "SERVING"
        info = ex.info()
        assert (info.backend, info.dimension, info.device) == ("delf", 40, "CPU")
        photo = np.asarray(__import__("PIL.Image").Image.open(sample_photo()).convert("RGB"))
        big = np.repeat(np.repeat(photo, 2, 0), 2, 1)  # 1024 x 1024, resized by the service
        f = ex.extract(encode(big), max_image_size=512)
        assert f.backend == "delf" and f.dimension == 40 and len(f) > 100
        assert f.image_size == (1024, 1024) and f.locations.max() > 600
        gallery = {"astronaut": sample_photo(), "coffee": sample_photo("coffee.png")}
        items = list(ex.extract_many(gallery.items()))
        search.add_images([ImageToAdd(i.request_id, i.request_id, i.features) for i in items])
        assert search.index_info().backend == "delf" and search.index_info().dimension == 40
        for name in gallery:  # another photo of each, not the indexed file
            result = search.search(ex.extract(encode(np.asarray(other_view(f"{name}.png")))))
            assert result.label == name and result.best.inliers >= result.min_inliers


def test_mixing_delf_and_sift_in_one_index_is_refused(delf_server, extractor, search_server):
    with ExtractorClient(delf_server) as ex, SearchClient(search_server) as search:
        search.add_images([ImageToAdd("a", "astronaut", ex.extract(sample_photo()))])
        sift = extractor.extract(sample_photo())
        for call in (
            lambda: search.search(sift),
            lambda: search.add_images([ImageToAdd("s", "x", sift)]),
        ):
            with pytest.raises(LandmarkError) as err:
                call()
            assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
            assert "holds delf features (40-D)" in err.value.details


def test_per_request_options_are_checked(delf_server, extractor):
    with ExtractorClient(delf_server) as ex:
        f = ex.extract(sample_photo(), image_scales=[0.5, 1.0], score_threshold=120.0)
        assert len(f) > 0
        with pytest.raises(LandmarkError, match="outside") as err:
            ex.extract(sample_photo(), image_scales=[9.0])
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(LandmarkError, match="options of the delf backend"):
        extractor.extract(sample_photo(), score_threshold=5.0)


@pytest.mark.parametrize(
    "handle, message",
    [
        ("", "no DELF model configured"),
        ("/nonexistent/delf", "does not exist"),
    ],
)
def test_load_errors_say_what_to_do(handle, message):
    with pytest.raises(DelfLoadError, match=message) as err:
        DelfBackend(DelfSettings(handle))
    assert "LANDMARK_DELF_MODEL" in str(err.value) and "--delf-model" in str(err.value)
    assert "tf-hub-format=compressed" in str(err.value)


def test_folder_that_is_not_a_module(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(DelfLoadError, match="cannot load DELF"):
        DelfBackend(DelfSettings(str(tmp_path)))


def test_serve_without_a_model_exits_with_a_message_not_a_traceback():
    env = {k: v for k, v in os.environ.items() if k != "LANDMARK_DELF_MODEL"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "extractor_service",
            "--port",
            "0",
            "--backend",
            "delf",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1
    assert "no DELF model configured" in proc.stderr and "--delf-model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_eval_with_the_delf_backend(tmp_path, fake_model):
    root = two_view_gallery(tmp_path / "g")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark_client.cli",
            "eval",
            str(root),
            "--json",
            "--backend",
            "delf",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LANDMARK_DELF_MODEL": fake_model},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["queries"] == 4 and report["top1"] == 1.0 and report["map"] == 1.0


REAL = os.environ.get("LANDMARK_DELF_MODEL", "")


@pytest.mark.skipif(
    not REAL or ("://" not in REAL and not os.path.isdir(REAL)),
    reason="set LANDMARK_DELF_MODEL to the real google/delf/1 module to run",
)
def test_the_real_module_end_to_end(search_server):
    server, port, _ = create_server(
        ExtractorConfig(port=0, metrics_port=0, backend="delf", delf_model=REAL)
    )
    try:
        with (
            ExtractorClient(f"127.0.0.1:{port}", timeout=300) as ex,
            SearchClient(search_server) as search,
        ):
            f = ex.extract(sample_photo())
            assert f.dimension == 40 and 100 < len(f) <= 1000
            assert f.locations[:, 0].max() < 512 and f.locations[:, 1].max() < 512
            search.add_images([ImageToAdd("a", "astronaut", f)])
            view = np.asarray(__import__("PIL.Image").Image.open(sample_photo()).convert("RGB"))
            rec = search.search(ex.extract(view[40:, 30:]))
            assert rec.label == "astronaut" and rec.best.inliers > 20
    finally:
        server.stop(0)
