"""The feature contract at its source: whatever size, shape, EXIF orientation or scale a
photo has, and whatever its backend's model returns, every extraction is accepted by the
search service's door, the one both services share (landmark.contract)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from extractor_service.backends import create_backend
from extractor_service.backends.delf import DelfSettings
from extractor_service.extractor import FeatureExtractor, Limits
from landmark import contract
from landmark.wire import Features
from tests.fake_delf import STRIDE, build_fake_delf

BACKENDS = ["sift", "aliked", "delf", "delf-past-border"]


@pytest.fixture(scope="module")
def cores(tmp_path_factory) -> dict[str, FeatureExtractor]:
    folder = tmp_path_factory.mktemp("delf")
    plain = build_fake_delf(folder / "plain")
    past = build_fake_delf(folder / "past", centre_stride=2 * STRIDE)
    backends = {
        "sift": create_backend("sift"),
        "aliked": create_backend("aliked"),
        "delf": create_backend("delf", delf=DelfSettings(str(plain))),
        "delf-past-border": create_backend("delf", delf=DelfSettings(str(past))),
    }
    return {name: FeatureExtractor(b, Limits()) for name, b in backends.items()}


def photo(seed: int, width: int, height: int, orientation: int) -> bytes:
    """A JPEG with structure at several scales (blobs and edges, so every backend finds
    keypoints up to the borders) and the EXIF orientation given."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.integers(-40, 40, (height, width, 3))
    img = Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    backend=st.sampled_from(BACKENDS),
    seed=st.integers(0, 2**16),
    width=st.integers(48, 700),
    aspect=st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 3.0]),
    orientation=st.integers(1, 8),
    max_image_size=st.sampled_from([0, 96, 320, 640]),
)
def test_every_extraction_passes_the_search_services_door(
    cores, backend, seed, width, aspect, orientation, max_image_size
):
    height = max(48, min(1400, round(width * aspect)))
    data = photo(seed, width, height, orientation)
    ex = cores[backend].extract(data, 300, max_image_size)
    f = ex.features
    contract.check(f)  # the door raises ValueError on anything it would refuse
    upright = (height, width) if orientation >= 5 else (width, height)
    assert f.image_size == upright
    assert f.locations.shape == (len(f), 2) and len(f) <= 300
    for extra in (f.scales, f.strengths):
        assert extra is None or extra.shape == (len(f),)


def test_a_model_placing_centres_past_the_border_is_clipped_and_counted(cores):
    ex = cores["delf-past-border"].extract(photo(1, 400, 400, 1), 1000, 0)
    assert ex.conformed.clipped > 0 and ex.conformed.dropped > 0
    contract.check(ex.features)
    w, h = ex.features.image_size
    x, y = ex.features.locations[:, 0], ex.features.locations[:, 1]
    assert x.min() >= 0 and y.min() >= 0 and x.max() <= w - 1 and y.max() <= h - 1


def test_conform_clips_near_drops_far_and_renormalises():
    d = np.eye(4, 8, dtype=np.float32) * np.float32([1, 2, 0.5, 1])[:, None]
    d[3] = 0  # no direction: dropped
    f = Features(
        "x",
        np.float32([[-3, 10], [50, 99.5], [200, 10], [5, 5]]),  # near, near, far, inside
        d,
        (100, 100),
        scales=np.float32([1, 2, 3, 4]),
    )
    out, changed = contract.conform(f)
    assert (changed.clipped, changed.dropped) == (2, 2)
    np.testing.assert_array_equal(out.locations, [[0, 10], [50, 99]])
    np.testing.assert_allclose(np.linalg.norm(out.descriptors, axis=1), 1.0)
    np.testing.assert_array_equal(out.scales, [1, 2])
    with pytest.raises(ValueError, match="descriptor 1 has norm 2"):
        contract.check(f)  # what the extractor conformed, the door refuses as sent
    with pytest.raises(ValueError, match=r"location 2 \(200, 10\) lies outside the 100x100"):
        contract.check(Features("x", f.locations[:3], np.eye(3, 8, dtype=np.float32), (100, 100)))
