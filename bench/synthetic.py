"""Generated database images that pad the index to the bench's sizes. Two kinds:

- ``gaussian``: descriptors drawn from a Gaussian with the mean and covariance of the real
  descriptors (clipped at zero when the real ones are, L2-normalised). Real query
  descriptors rarely meet such vectors, so this padding hardly competes for votes.
- ``real``: descriptors drawn from a pool of real descriptors of photos that are never
  queries (the distractor photos, scikit-image's photos and generated views of them), each
  moved by a small random perturbation. They sit where real descriptors sit and steal votes
  the way real confusers do.

Locations are uniform over a 1024 x 768 frame in both: no geometry ties a padded image to
anything, so every verified match still has to come from a real photo.
"""

from __future__ import annotations

import numpy as np

from landmark.wire import Features


class DescriptorModel:
    def __init__(self, real: np.ndarray) -> None:
        self.mean = real.mean(axis=0)
        cov = np.cov(real, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        self.factor = (vecs * np.sqrt(np.clip(vals, 0, None))).astype(np.float32)
        self.nonnegative = bool((real >= 0).all())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, self.factor.shape[0]), dtype=np.float32)
        d = self.mean + z @ self.factor.T
        if self.nonnegative:
            np.clip(d, 0, None, out=d)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return d.astype(np.float32)


class DescriptorPool:
    """Real descriptors, drawn with a perturbation of about ``spread`` (Euclidean, on unit
    vectors; two views of one point are typically 0.3-0.6 apart)."""

    def __init__(self, pool: np.ndarray, spread: float = 0.15) -> None:
        self.pool = np.asarray(pool, np.float32)
        self.sigma = spread / np.sqrt(self.pool.shape[1])
        self.nonnegative = bool((self.pool >= 0).all())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        d = self.pool[rng.integers(0, len(self.pool), n)]
        d = d + rng.standard_normal(d.shape, dtype=np.float32) * np.float32(self.sigma)
        if self.nonnegative:
            np.clip(d, 0, None, out=d)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return d.astype(np.float32)


def synthetic_images(
    model: DescriptorModel | DescriptorPool,
    count: int,
    per_image: int,
    backend: str,
    seed: int = 0,
):
    """Yield (image_id, Features) for ``count`` generated images."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        d = model.sample(per_image, rng)
        loc = rng.uniform(0, 1, (per_image, 2)).astype(np.float32) * np.float32([1024, 768])
        yield f"synthetic/{i:06d}", Features(backend, loc, d, (1024, 768))
