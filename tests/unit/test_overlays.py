"""Frame-locked correspondences (an overlay both photos carry) are peeled off a fit; a
scene's fit stands, and so does a copy of the same photo."""

import numpy as np
import pytest

from search_service.search.overlays import frame_locked, frame_scales, placed_alike
from search_service.search.search_params import VerifyParams
from search_service.search.verify import Frames, verify

P = VerifyParams()
QUERY, REFERENCE = (640.0, 480.0), (988.0, 740.0)  # a small photo and a larger one
SCALE = REFERENCE[0] / QUERY[0]  # an agency's stamp scales with the width


def _rotation(deg: float, scale: float) -> np.ndarray:
    t = np.radians(deg)
    return scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def scene(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Correspondences of a building seen from elsewhere: turned 12 degrees, scaled 1.3."""
    src = rng.uniform((150, 100), (450, 380), (n, 2))
    dst = src @ _rotation(12, 1.3).T + (60, -40) + rng.normal(0, 0.7, (n, 2))
    return src.astype(np.float32), dst.astype(np.float32)


def watermark(rng: np.random.Generator, per_step: int, steps: int) -> tuple[np.ndarray, ...]:
    """A stamp repeated on a slanted grid: each copy in the query matches a copy ``k``
    grid steps over in the reference, for k = 0 .. steps - 1."""
    src, dst = [], []
    for k in range(steps):
        s = rng.uniform(0, QUERY, (per_step, 2))
        src.append(s)
        dst.append(s * SCALE * 1.01 + k * np.array([131.0, -61.0]) + rng.normal(0, 1.0, s.shape))
    return np.concatenate(src).astype(np.float32), np.concatenate(dst).astype(np.float32)


def frames(query_keypoints: int = 1000) -> Frames:
    return Frames(QUERY, REFERENCE, query_keypoints, examine_from=9)


def test_frame_scales_are_the_ratios_of_the_two_frames():
    got = frame_scales((400, 300), (800, 400))
    np.testing.assert_allclose(got, [[1, 1], [2, 2], [4 / 3, 4 / 3], [2, 4 / 3]])


def test_a_watermark_grid_is_frame_locked_step_for_step():
    rng = np.random.default_rng(0)
    src, dst = watermark(rng, 12, 1)
    tolerance = 0.004 * max(REFERENCE)
    assert frame_locked(src, dst, QUERY, REFERENCE, tolerance)[0].sum() == 12
    a, b = scene(rng, 40)
    assert frame_locked(a, b, QUERY, REFERENCE, tolerance)[0].sum() <= 4


def test_a_banner_is_placed_alike_and_the_same_points_elsewhere_are_not():
    rng = np.random.default_rng(1)
    # text along the bottom edge of both frames, scaled with the width
    src = np.column_stack([rng.uniform(20, 600, 10), rng.uniform(450, 475, 10)])
    bottom = REFERENCE[1] - SCALE * QUERY[1]  # what keeps the bottom edges together
    dst = src * SCALE + (0.0, bottom) + rng.normal(0, 0.5, src.shape)
    tolerance = 0.004 * max(REFERENCE)
    assert placed_alike(src, dst, QUERY, REFERENCE, tolerance).sum() == 10
    assert placed_alike(src, dst + (0, -80), QUERY, REFERENCE, tolerance).sum() < 4


@pytest.mark.parametrize("seed", range(3))
def test_the_scene_is_found_under_a_watermark(seed):
    rng = np.random.default_rng(seed)
    ws, wd = watermark(rng, 30, 3)  # 90 matches on the stamp, in three grid steps
    ss, sd = scene(rng, 25)
    src, dst = np.concatenate([ws, ss]), np.concatenate([wd, sd])
    result = verify(src, dst, frames(), P)
    assert result.inliers >= 20
    assert result.mask[len(ws) :].sum() >= 20 and result.mask[: len(ws)].sum() <= 2
    np.testing.assert_allclose(result.transform[:, :2], _rotation(12, 1.3), atol=0.05)


def test_a_watermark_alone_is_no_match():
    rng = np.random.default_rng(3)
    src, dst = watermark(rng, 14, 3)
    assert verify(src, dst, frames(), VerifyParams(peel_overlays=False)).inliers >= 14
    assert verify(src, dst, frames(), P).inliers < 9


def test_a_copy_of_the_same_photo_stands():
    rng = np.random.default_rng(4)
    src = rng.uniform(0, QUERY, (400, 2)).astype(np.float32)
    dst = (src * SCALE + rng.normal(0, 0.5, src.shape)).astype(np.float32)
    # 400 of the query's 1000 keypoints: the whole scene maps frame to frame
    assert verify(src, dst, frames(1000), P).inliers >= 390
    # a copy at another resolution keeps fewer: 120 of 1000 still do
    assert verify(src[:120], dst[:120], frames(1000), P).inliers >= 115
    # the same 400 among 8000 keypoints: a stamp, not the scene
    assert verify(src, dst, frames(8000), P).inliers < 9
    # 200 in a band along the bottom edge: a caption banner, not a resized copy
    src_b = np.column_stack([src[:200, 0], 0.85 * QUERY[1] + 0.15 * src[:200, 1]])
    src_b = src_b.astype(np.float32)
    dst_b = (src_b * SCALE + rng.normal(0, 0.5, src_b.shape)).astype(np.float32)
    assert verify(src_b, dst_b, frames(1000), P).inliers < 9


def test_a_fit_below_the_threshold_is_not_examined():
    rng = np.random.default_rng(5)
    src, dst = watermark(rng, 8, 1)
    below = Frames(QUERY, REFERENCE, 1000, examine_from=9)
    assert verify(src, dst, below, P).inliers == 8  # cannot be accepted: left as it is


def test_inliers_shared_by_two_landmarks_count_half_in_each():
    from search_service.index.images import ImageMeta
    from search_service.search.exact_matches import Putative
    from search_service.search.ranking import distinct_evidence
    from search_service.search.verify import Checked, Verification

    def checked(image: int, keypoints: range) -> Checked:
        q = np.array(keypoints)
        return Checked(
            Putative(image, q, np.zeros((q.size, 2))),
            np.zeros((q.size, 2)),
            np.zeros((q.size, 2)),
            Verification(q.size, np.ones(q.size, bool), np.eye(2, 3)),
        )

    images = [ImageMeta(f"img{i}", label, 0, 1, 10, 10) for i, label in enumerate("aabc")]
    # img0 (a) and img2 (b) share keypoints 10-29; img1 (a) shares 0-9 with img0; img3 (c)
    # shares nothing but has too few inliers to count
    found = [checked(0, range(0, 30)), checked(1, range(0, 10)), checked(2, range(10, 40)),
             checked(3, range(30, 35))]  # fmt: skip
    assert distinct_evidence(found, images, min_inliers=9) == [20, 10, 20, 5]
    # one label only: nothing is shared across landmarks
    assert distinct_evidence(found[:2], images, min_inliers=9) == [30, 10]


def _cluster(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` matches within ``radius`` px of the query's (300, 200), frame-locked with a
    translation that places them nowhere alike in the two frames."""
    angle, r = rng.uniform(0, 2 * np.pi, n), radius * np.sqrt(rng.uniform(0, 1, n))
    src = np.column_stack([300 + r * np.cos(angle), 200 + r * np.sin(angle)])
    dst = src * SCALE + (37.0, 53.0) + rng.normal(0, 0.3, src.shape)
    return src.astype(np.float32), dst.astype(np.float32)


def test_a_compact_frame_locked_cluster_is_peeled_only_when_weak():
    rng = np.random.default_rng(6)
    # a word of a watermark: 12 matches in a 30-px disc, weak (under twice the threshold)
    assert verify(*_cluster(rng, 12, 30), frames(), P).inliers < 9
    # a dome seen alike from the same spot: 25 matches in the same disc fit some
    # frame-locked map because they are bunched, not because they are a stamp: kept
    assert verify(*_cluster(rng, 25, 30), frames(), P).inliers >= 24
    # the same 25 spread wide pin the frame-locked map down: a stamp
    assert verify(*_cluster(rng, 25, 250), frames(), P).inliers < 9
