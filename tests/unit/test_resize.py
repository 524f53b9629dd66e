import numpy as np
import pytest

from extractor_service.backends.sift import SiftBackend
from extractor_service.extractor import FeatureExtractor, Limits
from extractor_service.resize import fit_scale, resize_to_fit, to_original
from tests.conftest import encode


def test_fit_scale_keeps_small_images_and_shrinks_large_ones():
    assert fit_scale(800, 600, 1024) == 1.0
    assert fit_scale(2048, 1000, 1024) == pytest.approx(0.5)
    assert fit_scale(1000, 4000, 1000) == pytest.approx(0.25)


def test_enlarge_brings_small_images_up_to_the_size():
    assert fit_scale(512, 256, 1024, enlarge=True) == 2.0
    assert fit_scale(2048, 1000, 1024, enlarge=True) == pytest.approx(0.5)
    big, sx, sy = resize_to_fit(np.zeros((100, 300, 3), np.uint8), 600, enlarge=True)
    assert big.shape == (200, 600, 3) and sx == sy == 2.0
    located = np.array([[10.0, 20.0]], np.float32)
    np.testing.assert_allclose(to_original((located + 0.5) * 2 - 0.5, 2.0, 2.0), located)


def test_resize_keeps_aspect_ratio():
    img = np.zeros((1000, 3000, 3), np.uint8)
    small, sx, sy = resize_to_fit(img, 600)
    assert small.shape == (200, 600, 3)
    assert sx == pytest.approx(0.2) and sy == pytest.approx(0.2)


def test_to_original_inverts_the_pixel_centre_mapping():
    orig = np.array([[0.0, 0.0], [99.0, 49.0], [37.5, 12.25]], np.float32)
    sx, sy = 0.3, 0.3
    resized = (orig + 0.5) * [sx, sy] - 0.5
    np.testing.assert_allclose(to_original(resized.astype(np.float32), sx, sy), orig, atol=1e-4)


def _blobs(width: int, height: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.full((height, width), 30.0, np.float32)
    for cx, cy in centres:
        img += 200.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_keypoints_are_reported_in_original_image_pixels():
    """Blobs at known places in a 1600x1200 image, extracted at 400 px, map back to them."""
    centres = np.array([[300, 250], [1300, 300], [800, 900], [200, 1000], [1400, 1000]], np.float32)
    image = _blobs(1600, 1200, centres, sigma=24.0)
    core = FeatureExtractor(SiftBackend(), Limits())
    result = core.extract(encode(image, "PNG"), max_features=50, max_image_size=400)
    f = result.features
    assert result.processed_size == (400, 300)
    assert f.image_size == (1600, 1200)
    assert len(f) > 0
    dist = np.linalg.norm(f.locations[:, None, :] - centres[None], axis=2)
    nearest = dist.min(axis=1)
    # Every detected blob keypoint sits on a blob centre in ORIGINAL coordinates (a resized
    # 400 px pixel is 4 original pixels, so a few pixels of error is sub-pixel there).
    assert (nearest < 8).sum() >= len(centres)
    found = dist.argmin(axis=1)[nearest < 8]
    assert set(found.tolist()) == set(range(len(centres)))
    # Scales are in original pixels too: a sigma-24 blob is tens of pixels wide, not ~6.
    assert f.scales is not None and np.median(f.scales[nearest < 8]) > 30
