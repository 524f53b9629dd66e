"""DELF from TensorFlow Hub (google/delf/1): attention-selected keypoints, 40-D descriptors.

The only module of the project that imports TensorFlow. The module is TF1 hub format; in
TF2 it is called through ``hub.load(handle).signatures['default']`` with

    image           float32 [H, W, 3] in [0, 1]
    score_threshold float32 scalar      (attention score a keypoint needs)
    image_scales    float32 [S]         (the image pyramid)
    max_feature_num int32 scalar

and returns ``locations`` float32 [N, 2] in (y, x) order, ``descriptors`` float32 [N, 40]
(L2-normalised, PCA-whitened), and, when present, ``scales`` and ``attention`` [N].
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Backend, RawFeatures

log = logging.getLogger(__name__)

DEFAULT_SCALES = (0.25, 0.3536, 0.5, 0.7071, 1.0, 1.4142, 2.0)
HUB_HANDLE = "https://tfhub.dev/google/delf/1"
HOW_TO_GET = (
    "Point --delf-model (or LANDMARK_DELF_MODEL) at the module: either its hub URL "
    f"({HUB_HANDLE}, or the Kaggle model google/delf/tensorFlow1/default/1; needs the network "
    "and is cached under TFHUB_CACHE_DIR), or a local folder holding the downloaded module "
    "(saved_model.pb + variables/). For an air-gapped site, download "
    f"{HUB_HANDLE}?tf-hub-format=compressed on a machine with network, untar it into a "
    "folder, copy that folder over, and pass its path."
)


class DelfLoadError(RuntimeError):
    """The DELF module could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class DelfSettings:
    handle: str
    score_threshold: float = 100.0
    image_scales: tuple[float, ...] = DEFAULT_SCALES
    max_scale: float = 2.0  # per-request scales above this are refused (GPU memory)


class DelfBackend(Backend):
    name = "delf"
    dimension = 40

    def __init__(self, settings: DelfSettings) -> None:
        self.settings = settings
        self._tf, self._fn, self.device = _load(settings.handle)

    def check_overrides(
        self, score_threshold: float | None, image_scales: tuple[float, ...] | None
    ) -> None:
        if score_threshold is not None and not 0 <= score_threshold < 1e6:
            raise ValueError(f"score_threshold={score_threshold} must be in [0, 1e6)")
        if image_scales is not None:
            if not 1 <= len(image_scales) <= 16:
                raise ValueError("image_scales must hold 1 to 16 values")
            bad = [s for s in image_scales if not 0.05 <= s <= self.settings.max_scale]
            if bad:
                raise ValueError(f"image_scales {bad} outside [0.05, {self.settings.max_scale}]")

    def extract(
        self,
        image: np.ndarray,
        max_features: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> RawFeatures:
        tf = self._tf
        self.check_overrides(score_threshold, image_scales)
        threshold = self.settings.score_threshold if score_threshold is None else score_threshold
        scales = image_scales or self.settings.image_scales
        out = self._fn(
            image=tf.constant(image.astype(np.float32) / 255.0),
            score_threshold=tf.constant(threshold, tf.float32),
            image_scales=tf.constant(scales, tf.float32),
            max_feature_num=tf.constant(max_features, tf.int32),
        )
        yx = out["locations"].numpy().astype(np.float32).reshape(-1, 2)
        descriptors = out["descriptors"].numpy().astype(np.float32).reshape(-1, self.dimension)
        n = descriptors.shape[0]
        strengths = (
            out["attention"].numpy().astype(np.float32).reshape(-1)
            if ("attention" in out)
            else None
        )
        scale_out = (
            out["scales"].numpy().astype(np.float32).reshape(-1) if "scales" in out else None
        )
        # DELF's receptive field is about 1/scale of the image; report a keypoint size in
        # pixels of the image given, like SIFT's (a nominal 64 px patch at scale 1).
        sizes = (64.0 / scale_out).astype(np.float32) if scale_out is not None else None
        order = np.argsort(-strengths, kind="stable") if strengths is not None else np.arange(n)
        order = order[:max_features]
        return RawFeatures(
            locations=np.ascontiguousarray(yx[order][:, ::-1]),  # (y, x) → (x, y)
            descriptors=_l2(descriptors[order]),
            scales=sizes[order] if sizes is not None else None,
            strengths=strengths[order] if strengths is not None else None,
        )


def _l2(d: np.ndarray) -> np.ndarray:
    return (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _load(handle: str):  # noqa: ANN202 (TensorFlow types)
    if not handle:
        raise DelfLoadError("no DELF model configured. " + HOW_TO_GET)
    is_url = "://" in handle
    if not is_url and not Path(handle).exists():
        raise DelfLoadError(f"DELF model folder {handle!r} does not exist. " + HOW_TO_GET)
    try:
        import tensorflow as tf

        with warnings.catch_warnings():  # tensorflow_hub 0.16 imports pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import tensorflow_hub as hub
    except ImportError as exc:
        raise DelfLoadError(
            f"the delf backend needs TensorFlow and tensorflow-hub ({exc}); install the "
            "extractor with them: pip install '.[delf]' (CPU) or '.[delf-gpu]' (GPU)"
        ) from None
    device = _configure_devices(tf)  # before anything initialises the GPUs
    log.info("loading DELF from %s on %s", handle, device)
    try:
        module = hub.load(handle)
    except Exception as exc:  # network, format or permission problems, many types
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        hint = (
            "Is the network reachable from here (and TFHUB_CACHE_DIR writable)? "
            if is_url
            else "Is it the unpacked module folder (saved_model.pb inside)? "
        )
        raise DelfLoadError(
            f"cannot load DELF from {handle!r} ({reason}). {hint}" + HOW_TO_GET
        ) from None
    signatures = getattr(module, "signatures", {})
    if "default" not in signatures:
        raise DelfLoadError(
            f"{handle!r} has no 'default' signature (has {list(signatures)}); "
            "is it the google/delf/1 module? " + HOW_TO_GET
        )
    fn = signatures["default"]
    expected = {"image", "score_threshold", "image_scales", "max_feature_num"}
    inputs = set(fn.structured_input_signature[1])
    if not expected <= inputs:
        raise DelfLoadError(
            f"{handle!r}'s default signature takes {sorted(inputs)}, not "
            f"{sorted(expected)}; is it the google/delf/1 module?"
        )
    return tf, fn, device


def _configure_devices(tf) -> str:  # noqa: ANN001
    """Use a GPU when TensorFlow sees one, growing its memory as needed."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: growth must be set before first use
            log.warning("could not enable memory growth on %s", gpu.name)
    if gpus:
        return "GPU:0"
    threads = os.environ.get("LANDMARK_TF_THREADS")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    return "CPU"
