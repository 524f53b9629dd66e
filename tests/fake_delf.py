"""A stand-in for TF-Hub's google/delf/1, built at test time (the real weights cannot be
downloaded here).

It is a real TensorFlow SavedModel with the module's `default` signature: the same input
names and dtypes (image float32 [H, W, 3] in [0, 1], score_threshold float32 scalar,
image_scales float32 [S], max_feature_num int32 scalar) and the same outputs (locations
[N, 2] in (y, x) order, descriptors [N, 40] L2-normalised, scales [N], attention [N]).
Inside, real ops with random weights: per scale, a resize, a strided convolution, an
attention score per cell, selection by score_threshold, and the strongest max_feature_num.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STRIDE = 8


def build_fake_delf(path: Path, seed: int = 0, centre_stride: int = STRIDE) -> Path:
    """``centre_stride`` above STRIDE places the receptive-field centres on a coarser grid
    than the cells (centre_stride * cell + centre_stride / 2), as a module computed on a
    padded grid would: the last cells' centres fall past the image's border, some just
    past it, some far."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    class FakeDelf(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(rng.normal(0, 1, (STRIDE, STRIDE, 3, 64)).astype("f4"))
            self.project = tf.Variable(rng.normal(0, 1, (64, 40)).astype("f4"))
            self.score = tf.Variable(rng.normal(0, 1, (64, 1)).astype("f4"))

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.float32, name="image"),
                tf.TensorSpec([], tf.float32, name="score_threshold"),
                tf.TensorSpec([None], tf.float32, name="image_scales"),
                tf.TensorSpec([], tf.int32, name="max_feature_num"),
            ]
        )
        def default(self, image, score_threshold, image_scales, max_feature_num):
            size = tf.cast(tf.shape(image)[:2], tf.float32)
            locs = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            descs = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            scales = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            atts = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            for i in tf.range(tf.size(image_scales)):
                s = image_scales[i]
                hw = tf.maximum(tf.cast(tf.round(size * s), tf.int32), STRIDE)
                x = tf.image.resize(image[None], hw)
                x = x - tf.reduce_mean(x, axis=[1, 2], keepdims=True)
                feat = tf.nn.relu(tf.nn.conv2d(x, self.kernel, STRIDE, "VALID"))[0]
                flat = tf.reshape(feat, [-1, 64])
                z = tf.squeeze(flat @ self.score, 1)
                z = (z - tf.reduce_mean(z)) / (tf.math.reduce_std(z) + 1e-6)
                att = 200.0 * tf.sigmoid(z)  # about half the cells score above 100
                keep = att >= score_threshold
                cells = tf.cast(tf.where(tf.reshape(keep, tf.shape(feat)[:2])), tf.float32)
                # centre of each cell's receptive field, in pixels of the input image, (y, x)
                yx = (cells * centre_stride + centre_stride / 2.0) / s
                locs = locs.write(i, yx)
                desc = tf.math.l2_normalize(tf.boolean_mask(flat, keep) @ self.project, 1)
                descs = descs.write(i, desc)
                atts = atts.write(i, tf.boolean_mask(att, keep))
                scales = scales.write(i, tf.fill([tf.shape(yx)[0]], s))
            locations = tf.reshape(locs.concat(), [-1, 2])
            descriptors = tf.reshape(descs.concat(), [-1, 40])
            attention = atts.concat()
            scale = scales.concat()
            k = tf.minimum(max_feature_num, tf.shape(attention)[0])
            top = tf.math.top_k(attention, k=k).indices
            return {
                "locations": tf.gather(locations, top),
                "descriptors": tf.gather(descriptors, top),
                "scales": tf.gather(scale, top),
                "attention": tf.gather(attention, top),
            }

    module = FakeDelf()
    tf.saved_model.save(module, str(path), signatures={"default": module.default})
    return path
