import numpy as np

from extractor_service.backends.sift import SiftBackend, root_sift


def test_root_sift_is_l2_normalised_and_non_negative():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 255, (50, 128)).astype(np.float32)
    r = root_sift(d)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-4)
    assert (r >= 0).all()


def test_sift_caps_features_strongest_first(photo):
    f = SiftBackend().extract(photo, 200)
    assert f.descriptors.shape == (200, 128)
    assert f.locations.shape == (200, 2)
    assert (np.diff(f.strengths) <= 1e-9).all()
    h, w = photo.shape[:2]
    assert (f.locations[:, 0] >= 0).all() and (f.locations[:, 0] < w).all()
    assert (f.locations[:, 1] >= 0).all() and (f.locations[:, 1] < h).all()


def test_flat_image_has_no_keypoints():
    f = SiftBackend().extract(np.full((100, 100, 3), 128, np.uint8), 100)
    assert f.descriptors.shape == (0, 128) and f.locations.shape == (0, 2)


def test_upright_keeps_one_keypoint_per_location_and_size(photo):
    f = SiftBackend().extract(photo, 300)
    spots = {
        (round(x, 1), round(y, 1), round(s, 1))
        for (x, y), s in zip(f.locations, f.scales, strict=True)
    }
    assert len(spots) == len(f.locations) == 300  # no repeats for extra orientations


def test_upright_descriptors_follow_the_image_frame(photo):
    """Rotated keypoints describe the same patch alike whatever the photo's rotation;
    upright ones describe it in the image's frame, so a quarter turn changes them."""
    rotated = np.ascontiguousarray(np.rot90(photo))

    def agreement(backend):
        a, b = backend.extract(photo, 300), backend.extract(rotated, 300)
        sim = a.descriptors @ b.descriptors.T
        return float(np.mean(sim.max(axis=1)))

    assert agreement(SiftBackend(upright=False)) > agreement(SiftBackend()) + 0.05
