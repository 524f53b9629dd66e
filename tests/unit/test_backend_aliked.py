"""The aliked backend with the model files the project ships (ONNX Runtime on the CPU)."""

import shutil

import numpy as np
import pytest

from extractor_service.backends import create_backend
from extractor_service.backends.aliked import (
    MODEL_DIR,
    AlikedBackend,
    AlikedLoadError,
    AlikedSettings,
)
from extractor_service.backends.aliked_heads import bilinear, detect


@pytest.fixture(scope="module")
def n16():
    return create_backend("aliked")


def test_descriptors_locations_and_scores_follow_the_contract(n16, photo):
    f = n16.extract(photo, 500)
    assert n16.dimension == 128 and n16.device == "CPU"
    assert f.descriptors.shape == (500, 128) and f.descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-5)
    h, w = photo.shape[:2]
    assert (f.locations >= 0).all() and (f.locations[:, 0] < w).all()
    assert (f.locations[:, 1] < h).all()
    assert (np.diff(f.strengths) <= 0).all() and (f.strengths > 0).all()


def test_the_threshold_decides_how_many_keypoints(n16, photo):
    few = n16.extract(photo, 5000, score_threshold=0.6)
    many = n16.extract(photo, 5000, score_threshold=0.05)
    assert 0 < len(few.locations) < len(many.locations)
    assert few.strengths.mean() > many.strengths.mean()
    with pytest.raises(ValueError, match="score_threshold"):
        n16.extract(photo, 100, score_threshold=1.5)
    with pytest.raises(ValueError, match="image_scales"):
        n16.extract(photo, 100, image_scales=(1.0,))


def test_odd_sizes_and_a_flat_image(n16):
    rng = np.random.default_rng(0)
    odd = n16.extract(rng.integers(0, 256, (37, 301, 3), dtype=np.uint8), 100)
    assert len(odd.locations) > 0 and (odd.locations[:, 1] < 37).all()
    flat = n16.extract(np.full((64, 64, 3), 128, np.uint8), 100)
    assert flat.descriptors.shape[0] == len(flat.locations)
    tiny = n16.extract(np.zeros((3, 3, 3), np.uint8), 100)
    assert tiny.descriptors.shape == (0, 128)


def test_t16_has_64_dimensional_descriptors(photo):
    t16 = AlikedBackend(AlikedSettings(variant="t16"))
    f = t16.extract(photo, 100)
    assert t16.dimension == 64 and f.descriptors.shape == (100, 64)


def test_a_missing_or_damaged_model_file_is_named_with_the_fix(tmp_path):
    model_dir = tmp_path / "aliked"
    shutil.copytree(MODEL_DIR, model_dir)
    (model_dir / "aliked-n16-extract.onnx").unlink()
    with pytest.raises(AlikedLoadError, match="aliked-n16-extract.onnx is missing.*git checkout"):
        AlikedBackend(AlikedSettings(model_dir=model_dir))
    # the numpy-head path reads the network graph and the head's tensors instead
    (model_dir / "aliked-n16-head.npz").unlink()
    with pytest.raises(AlikedLoadError, match="aliked-n16-head.npz is missing.*git checkout"):
        AlikedBackend(AlikedSettings(model_dir=model_dir, head="numpy"))
    shutil.copy(MODEL_DIR / "aliked-n16-extract.onnx", model_dir)
    graph = model_dir / "aliked-n16-extract.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    with pytest.raises(AlikedLoadError, match="is damaged.*make export-aliked"):
        AlikedBackend(AlikedSettings(model_dir=model_dir))
    with pytest.raises(AlikedLoadError, match="unknown ALIKED variant"):
        AlikedBackend(AlikedSettings(variant="n64"))
    with pytest.raises(AlikedLoadError, match="unknown ALIKED head"):
        AlikedBackend(AlikedSettings(head="torch"))
    with pytest.raises(AlikedLoadError, match="unknown optimisation level 'max'"):
        AlikedBackend(AlikedSettings(optimization="max"))


def test_every_optimisation_level_gives_the_same_features(n16, photo):
    basic = AlikedBackend(AlikedSettings(optimization="basic")).extract(photo, 300)
    default = n16.extract(photo, 300)
    np.testing.assert_allclose(basic.locations, default.locations, atol=1e-3)
    np.testing.assert_allclose(basic.descriptors, default.descriptors, atol=1e-4)


def test_detect_keeps_strict_maxima_away_from_the_border():
    scores = np.zeros((20, 20), np.float32)
    scores[10, 10] = 0.9  # a peak
    scores[5, 5] = scores[5, 6] = 0.8  # a plateau of two: not a strict maximum
    scores[0, 10] = 0.95  # on the border
    xy, strength = detect(scores, 10, threshold=0.2)
    assert xy.shape == (1, 2)
    np.testing.assert_allclose(xy[0], [10, 10], atol=1e-6)
    assert strength[0] == pytest.approx(0.9)


def test_bilinear_sampling_is_zero_outside_and_exact_on_pixels():
    maps = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    got = bilinear(maps, np.array([[1, 1], [1.5, 1], [-1, 0], [3.5, 0]], np.float32))[0]
    np.testing.assert_allclose(got, [5, 5.5, 0, 1.5])
