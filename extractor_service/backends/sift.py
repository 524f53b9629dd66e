"""OpenCV SIFT with RootSIFT normalisation (Arandjelovic & Zisserman, 2012). CPU, no model.

Upright by default: descriptors are computed in the image's own frame, not rotated to
each keypoint's dominant gradient. Landmark photos are upright (EXIF orientation is
applied when decoding), and a dominant orientation is what lighting changes and
repetitive facades disturb first; dropping it made matches more distinctive (+2 top-1
queries on the real landmark set at fewer false accepts, docs/quality.md). This follows
the "upright" variants that did best on phototourism images in Jin et al., "Image
Matching across Wide Baselines: From Paper to Practice" (IJCV 2021).

Before detection the gray image is contrast-normalised with CLAHE (local histogram
equalisation, clip 2.0, 8x8 tiles): it helps dark, hazy and night photos, and measured +3
points of top-1 on the real landmark set at the same false-accept rate (docs/quality.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Backend, RawFeatures


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """L1-normalise, then take the square root: the result is L2-normalised, and Euclidean
    distance between RootSIFT vectors equals the Hellinger kernel distance of SIFT."""
    d = descriptors.astype(np.float32, copy=False)
    d = d / (np.abs(d).sum(axis=1, keepdims=True) + 1e-7)
    return np.sqrt(d, dtype=np.float32)


class SiftBackend(Backend):
    name = "sift"
    dimension = 128

    def __init__(
        self, contrast_threshold: float = 0.04, clahe: bool = True, upright: bool = True
    ) -> None:
        self.contrast_threshold = contrast_threshold
        self.clahe = clahe
        self.upright = upright

    def extract(
        self,
        image: np.ndarray,
        max_features: int,
        score_threshold: float | None = None,
        image_scales: tuple[float, ...] | None = None,
        deadline: float | None = None,
    ) -> RawFeatures:
        if score_threshold is not None or image_scales is not None:
            raise ValueError(
                "score_threshold and image_scales are options of the delf backend; "
                "this extractor runs sift"
            )
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.clahe:
            gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
        # A detector per call: OpenCV feature objects are not safe to share across threads.
        if self.upright:
            keypoints, descriptors = self._upright(gray, max_features)
        else:
            sift = cv2.SIFT_create(
                nfeatures=max_features, contrastThreshold=self.contrast_threshold
            )
            keypoints, descriptors = sift.detectAndCompute(gray, None)
        if descriptors is None or not keypoints:
            empty = np.zeros((0,), np.float32)
            return RawFeatures(
                np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), empty, empty.copy()
            )
        response = np.array([k.response for k in keypoints], np.float32)
        order = np.argsort(-response, kind="stable")[:max_features]
        locations = np.array([k.pt for k in keypoints], np.float32)[order]
        scales = np.array([k.size for k in keypoints], np.float32)[order]
        return RawFeatures(
            locations=locations,
            descriptors=root_sift(descriptors[order]),
            scales=scales,
            strengths=response[order],
        )

    def _upright(self, gray: np.ndarray, max_features: int) -> tuple[list, np.ndarray | None]:
        """The strongest ``max_features`` keypoints, one per location and size (SIFT
        repeats a keypoint for each dominant orientation), described at angle 0."""
        # Ask for twice as many: repeats for extra orientations are dropped below.
        sift = cv2.SIFT_create(
            nfeatures=2 * max_features, contrastThreshold=self.contrast_threshold
        )
        strongest: dict[tuple[float, float, float], cv2.KeyPoint] = {}
        for k in sift.detect(gray, None):
            key = (round(k.pt[0], 1), round(k.pt[1], 1), round(k.size, 1))
            if key not in strongest or k.response > strongest[key].response:
                strongest[key] = k
        chosen = sorted(strongest.values(), key=lambda k: -k.response)[:max_features]
        upright = [
            cv2.KeyPoint(k.pt[0], k.pt[1], k.size, 0.0, k.response, k.octave, k.class_id)
            for k in chosen
        ]
        if not upright:
            return [], None
        keypoints, descriptors = sift.compute(gray, upright)
        return list(keypoints), descriptors
