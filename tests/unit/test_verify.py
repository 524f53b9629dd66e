import numpy as np
import pytest

from search_service.search.search_params import MIN_INLIERS, VerifyParams
from search_service.search.verify import fit, is_degenerate

P = VerifyParams()


def _affine(points: np.ndarray, a: np.ndarray) -> np.ndarray:
    return points @ a[:, :2].T + a[:, 2]


def test_recovers_a_similarity_among_outliers():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 800, (200, 2)).astype(np.float32)
    a = np.array([[0.7, -0.3, 40], [0.3, 0.7, -10]], np.float32)
    dst = _affine(src, a) + rng.normal(0, 0.5, (200, 2))
    dst[:80] = rng.uniform(0, 800, (80, 2))  # 40% outliers
    result = fit(src, dst.astype(np.float32), (800, 800), P)
    assert 115 <= result.inliers <= 125
    assert not result.mask[:80].sum() > 5
    np.testing.assert_allclose(result.transform, a, atol=0.05 * np.abs(a).max())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [100, 300])
def test_random_matches_do_not_verify(seed, n):
    # a chance fit among wrong matches stays below the least threshold the service accepts
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 800, (n, 2)).astype(np.float32)
    dst = rng.uniform(0, 800, (n, 2)).astype(np.float32)
    assert fit(src, dst, (800, 800), P).inliers < min(MIN_INLIERS.values())


def test_collapsed_transform_scores_zero():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 800, (60, 2)).astype(np.float32)
    dst = np.tile(np.array([[400.0, 300.0]], np.float32), (60, 1))  # all onto one point
    dst += rng.normal(0, 0.3, dst.shape).astype(np.float32)
    assert fit(src, dst, (800, 800), P).inliers == 0


@pytest.mark.parametrize(
    "a, degenerate",
    [
        ([[1, 0, 0], [0, 1, 0]], False),
        ([[0.5, 0.1, 0], [-0.1, 0.5, 0]], False),
        ([[0.01, 0, 0], [0, 0.01, 0]], True),  # everything shrinks to a point
        ([[1, 0, 0], [0, 0.05, 0]], True),  # one axis collapsed
        ([[30, 0, 0], [0, 30, 0]], True),  # absurd zoom
        ([[-1, 0, 0], [0, 1, 0]], True),  # a mirror image
        ([[0, 1, 0], [1, 0, 0]], True),  # a mirror image along the diagonal
    ],
)
def test_degenerate_transforms(a, degenerate):
    assert is_degenerate(np.array(a, np.float32), P) is degenerate


def test_too_few_matches():
    src = np.zeros((3, 2), np.float32)
    assert fit(src, src, (100, 100), P).inliers == 0
