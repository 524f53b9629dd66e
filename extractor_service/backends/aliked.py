"""ALIKED (Zhao et al., "ALIKED: A Lighter Keypoint and Descriptor Extraction Network via
Deformable Transformation", IEEE TIM 2023): learned keypoints and descriptors that hold up
across day and night, seasons and wide baselines, where SIFT fails.

The whole extraction (network, keypoint detection, descriptor head) runs in ONNX Runtime
as one graph shipped in ``extractor_service/models/aliked`` (official weights, BSD-3; see
the README there), on a CUDA GPU when onnxruntime-gpu sees one and on the CPU otherwise:
only keypoints, scores and descriptors leave the device, and a batch of photos of one
size runs as one call (``extract_batch``). ``head="numpy"`` selects the previous path, kept
for comparison: the network graph, then detection and the head in numpy
(``aliked_heads``). Descriptors are 128-D for n16 and n32, 64-D for t16, L2-normalised;
strengths are the keypoints' detection scores.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .aliked_heads import HeadWeights, describe, detect
from .base import BatchBackend, RawFeatures

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "aliked"
VARIANTS = ("t16", "n16", "n32")
HEADS = ("onnx", "numpy")  # where detection and the descriptor head run
OPTIMIZATIONS = ("basic", "extended", "all")  # ONNX Runtime's graph optimisation levels
PADDING = 32  # the network's total stride: maps are exact for sides that are multiples of it
HOW_TO_FIX = (
    "The files ship with the project in extractor_service/models/aliked; restore them with "
    "'git checkout -- extractor_service/models/aliked' (or reinstall the package), or rebuild "
    "them from the official weights with 'make export-aliked'."
)


class AlikedLoadError(RuntimeError):
    """The ALIKED model files are missing, damaged or cannot be run; the message says why."""


@dataclass(frozen=True)
class AlikedSettings:
    variant: str = "n16"
    threshold: float = 0.2  # detection score a keypoint needs; <= 0 keeps the strongest only
    model_dir: Path = MODEL_DIR
    threads: int = 0  # ONNX Runtime threads per call; 0 = one per core (the service sets it)
    head: str = "onnx"  # "onnx": one graph does everything; "numpy": the previous path
    cpu_only: bool = False  # never the GPU, even where ONNX Runtime offers one
    profile: str = ""  # file prefix for ONNX Runtime's profile of every node (make gpu-check)
    optimization: str = "all"  # ONNX Runtime's graph optimisation level: basic, extended, all


def verify_files(model_dir: Path, names: list[str]) -> None:
    """Check ``names`` against ``model_dir/SHA256SUMS``; AlikedLoadError if one is missing,
    unlisted or damaged."""
    sums_path = model_dir / "SHA256SUMS"
    if not sums_path.is_file():
        raise AlikedLoadError(f"{sums_path} is missing. " + HOW_TO_FIX)
    sums = {}
    for line in sums_path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name.strip()] = digest.strip()
    for name in names:
        path = model_dir / name
        if not path.is_file():
            raise AlikedLoadError(f"model file {path} is missing. " + HOW_TO_FIX)
        if name not in sums:
            raise AlikedLoadError(f"{name} is not listed in {sums_path}. " + HOW_TO_FIX)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sums[name]:
            raise AlikedLoadError(
                f"model file {path} is damaged: its SHA-256 is {digest}, SHA256SUMS says "
                f"{sums[name]}. " + HOW_TO_FIX
            )


def pad_to_stride(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``image`` edge-padded around its centre to multiples of PADDING (as the reference
    does), and the (top, left) of the photo inside it."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % PADDING, -width % PADDING
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(image, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="edge")
    return padded, (top, left)


class AlikedBackend(BatchBackend):
    name = "aliked"
    enlarge = True  # one scale only: a photo and its half-size copy must look alike to it

    def __init__(self, settings: AlikedSettings) -> None:
        if settings.variant not in VARIANTS:
            raise AlikedLoadError(
                f"unknown ALIKED variant {settings.variant!r}; choose one of {', '.join(VARIANTS)}"
            )
        if settings.head not in HEADS:
            raise AlikedLoadError(
                f"unknown ALIKED head {settings.head!r}; choose one of {', '.join(HEADS)}"
            )
        if settings.optimization not in OPTIMIZATIONS:
            raise AlikedLoadError(
                f"unknown optimisation level {settings.optimization!r}; choose one of "
                f"{', '.join(OPTIMIZATIONS)}"
            )
        self.settings = settings
        self.head_weights: HeadWeights | None = None  # the numpy head's, on that path only
        if settings.head == "onnx":
            graph = f"aliked-{settings.variant}-extract.onnx"
            verify_files(settings.model_dir, [graph])
        else:
            graph, head = f"aliked-{settings.variant}.onnx", f"aliked-{settings.variant}-head.npz"
            verify_files(settings.model_dir, [graph, head])
            with np.load(settings.model_dir / head) as arrays:
                self.head_weights = HeadWeights.from_arrays(dict(arrays))
        self.session, self.device = _session(settings.model_dir / graph, settings)
        if self.head_weights is not None:
            self.dimension = self.head_weights.dimension
        else:  # the descriptors output is [batch, keypoints, D]
            self.dimension = int(self.session.get_outputs()[2].shape[2])
        log.info("ALIKED-%s loaded on %s", settings.variant.upper(), self.device)

    def dense(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The numpy-head path's network maps for an RGB uint8 image [H, W, 3]: features
        [C, H, W] and scores [H, W], cropped back from the padded image."""
        height, width = image.shape[:2]
        padded, (top, left) = pad_to_stride(image)
        tensor = (padded.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        features, scores = self.session.run(None, {"image": np.ascontiguousarray(tensor)})
        crop = (slice(top, top + height), slice(left, left + width))
        return features[0][:, crop[0], crop[1]], scores[0, 0][crop]

    def extract_batch(
        self, images: list[np.ndarray], max_features: int, threshold: float
    ) -> list[RawFeatures]:
        """Features of photos of one shape [H, W, 3], run through the graph as one batch."""
        height, width = images[0].shape[:2]
        if any(image.shape != images[0].shape for image in images):
            raise ValueError("a batch holds photos of one size only")
        if self.head_weights is not None:
            head = self.head_weights
            return [self._numpy_path(image, max_features, threshold, head) for image in images]
        padded = [pad_to_stride(image) for image in images]
        top, left = padded[0][1]
        batch = np.stack([p for p, _ in padded])
        budget = min(max_features, batch.shape[1] * batch.shape[2])
        feed = {
            "image": batch,
            "crop": np.array([top, left, height, width], np.int64),
            "budget": np.zeros(budget, np.float32),
            "threshold": np.array(threshold, np.float32),
        }
        keypoints, scores, descriptors, valid = self.session.run(None, feed)
        out = []
        for i in range(len(images)):
            kept = np.flatnonzero(valid[i])
            kept = kept[np.argsort(-scores[i, kept], kind="stable")]  # by the refined score
            out.append(RawFeatures(keypoints[i, kept], descriptors[i, kept], None, scores[i, kept]))
        return out

    def _numpy_path(
        self, image: np.ndarray, max_features: int, threshold: float, head: HeadWeights
    ) -> RawFeatures:
        features, scores = self.dense(image)
        xy, strengths = detect(np.ascontiguousarray(scores), max_features, threshold)
        return RawFeatures(xy, describe(features, xy, head), None, strengths)

    def threshold_for(
        self, score_threshold: float | None, image_scales: tuple[float, ...] | None
    ) -> float:
        if image_scales is not None:
            raise ValueError(
                "image_scales is an option of the delf backend; this extractor runs aliked"
            )
        if score_threshold is not None and not 0 <= score_threshold < 1:
            raise ValueError(f"score_threshold={score_threshold} must be in [0, 1) for aliked")
        return self.settings.threshold if score_threshold is None else score_threshold


def _session(path: Path, settings: AlikedSettings):  # noqa: ANN202 (onnxruntime types)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise AlikedLoadError(
            f"the aliked backend needs ONNX Runtime ({exc}); install the extractor with it: "
            "pip install '.[aliked]' (CPU) or '.[aliked-gpu]' (CUDA GPU)"
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, f"ORT_ENABLE_{settings.optimization.upper()}"
    )
    if settings.threads:
        options.intra_op_num_threads = settings.threads
    if settings.profile:
        options.enable_profiling = True
        options.profile_file_prefix = settings.profile
    available = [] if settings.cpu_only else ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider",) if p in available] + ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise AlikedLoadError(f"ONNX Runtime cannot load {path}: {exc}. " + HOW_TO_FIX) from None
    device = "GPU:0" if session.get_providers()[0] == "CUDAExecutionProvider" else "CPU"
    return session, device
