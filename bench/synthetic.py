"""Generated database images with the statistics of real ones.

Descriptors are drawn from a Gaussian with the mean and covariance of real descriptors
(RootSIFT from the real photos), clipped at zero like RootSIFT and L2-normalised;
locations are uniform over a 1024 x 768 frame. They are distractors: no geometry ties
them to anything, so every verified match still has to come from a real photo.
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


def synthetic_images(
    model: DescriptorModel, count: int, per_image: int, backend: str, seed: int = 0
):
    """Yield (image_id, Features) for ``count`` generated images."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        d = model.sample(per_image, rng)
        loc = rng.uniform(0, 1, (per_image, 2)).astype(np.float32) * np.float32([1024, 768])
        yield f"synthetic/{i:06d}", Features(backend, loc, d, (1024, 768))
