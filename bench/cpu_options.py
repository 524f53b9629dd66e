"""`make cpu-options`: the aliked extractor's CPU options side by side, in one run.

Each option is measured the way the extractor runs a photo (decode, resize, extract) on
the same 16 real photos: photos per second of one process on this machine's cores, and
how far its features are from the default's (the same keypoints and descriptors within
1e-4 means the same answers; anything else needs `landmark eval`, docs/quality.md).

Options: the previous path (the network graph, then detection and descriptor head in
numpy) as the service ran it and with the default's threads; ONNX Runtime's graph
optimisation levels; thread layouts (two calls at once with one thread each, the service's
default; two calls at once on every core, as it ran before; one call at a time on every
core, the lowest latency); 768 against 1024 px; batches of 1, 2 and 4 photos of one size
(what dynamic batching runs); int8 static quantisation (QDQ, per-channel) of the
convolutions, calibrated on photos outside the landmark set (scikit-image's samples
and generated views of them). Writes bench/results/cpu_options.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import DATA, RESULTS, feature_difference
from bench.machine import describe

PHOTOS = 16
MAX_FEATURES = 1000


def rate(backend, blobs: list[bytes], size: int, at_once: int) -> float:  # noqa: ANN001
    """Photos per second over ``blobs``, the better of two passes (the machine is shared)."""
    from extractor_service.extractor import FeatureExtractor, Limits

    core = FeatureExtractor(backend, Limits())
    core.extract(blobs[0], MAX_FEATURES, size)  # warm up at this size
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        with ThreadPoolExecutor(at_once) as pool:
            list(pool.map(lambda b: core.extract(b, MAX_FEATURES, size), blobs))
        best = min(best, time.perf_counter() - start)
    return round(len(blobs) / best, 2)


def one_size(blobs: list[bytes]) -> list[np.ndarray]:
    """The photos brought to one size (1024 x 768), as a batch takes them."""
    import cv2

    from extractor_service.decode import decode_image

    return [
        cv2.resize(decode_image(b, 40_000_000), (1024, 768), interpolation=cv2.INTER_AREA)
        for b in blobs
    ]


def batch_difference(backend, reference, blobs: list[bytes], batch: int) -> dict:  # noqa: ANN001
    """How far ``backend``'s batches of ``batch`` are from ``reference`` run one photo at a
    time, on the same 4 photos."""
    photos = one_size(blobs[:4])
    threshold = backend.settings.threshold
    batched = []
    for i in range(0, len(photos), batch):
        batched += backend.extract_batch(photos[i : i + batch], MAX_FEATURES, threshold)
    alone = [reference.extract(p, MAX_FEATURES) for p in photos]
    return feature_difference(zip(batched, alone, strict=True))


def batch_rate(backend, blobs: list[bytes], batch: int) -> float:  # noqa: ANN001
    """Photos per second when the photos, brought to one size (1024 x 768), run ``batch``
    at a time through one call, one call at a time."""
    photos = one_size(blobs)
    threshold = backend.settings.threshold
    backend.extract_batch(photos[:batch], MAX_FEATURES, threshold)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for i in range(0, len(photos), batch):
            backend.extract_batch(photos[i : i + batch], MAX_FEATURES, threshold)
        best = min(best, time.perf_counter() - start)
    return round(len(photos) / best, 2)


def difference(backend, reference, blobs: list[bytes], size: int) -> dict:  # noqa: ANN001
    """How far ``backend``'s features are from ``reference``'s on the same 4 photos."""
    from extractor_service.extractor import FeatureExtractor, Limits

    ours, theirs = FeatureExtractor(backend, Limits()), FeatureExtractor(reference, Limits())
    return feature_difference(
        (
            ours.extract(b, MAX_FEATURES, size).features,
            theirs.extract(b, MAX_FEATURES, size).features,
        )
        for b in blobs[:4]
    )


def calibration_images(size: int = 1024) -> list[np.ndarray]:
    """scikit-image's sample photos and two generated views of each, none of them in the
    landmark set, brought to ``size`` px as the extractor brings photos."""
    import skimage
    from PIL import Image

    from extractor_service.backends.aliked import pad_to_stride
    from extractor_service.resize import resize_to_fit
    from landmark_client.demo import synthetic_views

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for i, path in enumerate(sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg"))):
        with Image.open(path) as img:
            if min(img.size) < 256:
                continue
        views = [Image.open(path).convert("RGB")] + [v for _, v in synthetic_views(path, i)]
        for view in views:
            image, _, _ = resize_to_fit(np.asarray(view.convert("RGB")), size, True)
            out.append(pad_to_stride(image)[0])
    return out


def quantised_model_dir(variant: str, into: Path) -> Path:
    """A model folder holding the extraction graph with int8 (QDQ) convolutions."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from extractor_service.backends.aliked import MODEL_DIR

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(
                {
                    "image": image[None],
                    "crop": np.array([0, 0, image.shape[0], image.shape[1]]),
                    "budget": np.zeros(MAX_FEATURES, np.float32),
                    "threshold": np.array(0.2, np.float32),
                }
                for image in calibration_images()
            )

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    name = f"aliked-{variant}-extract.onnx"
    quantize_static(
        str(MODEL_DIR / name),
        str(into / name),
        Photos(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    digest = hashlib.sha256((into / name).read_bytes()).hexdigest()
    (into / "SHA256SUMS").write_text(f"{digest}  {name}\n")
    return into


def measure() -> dict:
    from extractor_service.backends.aliked import OPTIMIZATIONS, AlikedBackend, AlikedSettings
    from landmark_client.gallery import scan

    blobs = [g.path.read_bytes() for g in scan(DATA)[:PHOTOS]]
    cores = os.cpu_count() or 1
    # the service's default with two extractions at once: one ONNX Runtime thread per call
    default = AlikedSettings(threads=max(1, cores // 2))
    reference = AlikedBackend(default)
    rows = []

    def row(
        option: str, settings: AlikedSettings, size: int, at_once: int, level: str = ""
    ) -> None:
        """One option; its features are compared with the default's at the same size."""
        backend = AlikedBackend(settings)
        print(f"  {option} ...", flush=True)
        rows.append(
            {
                "option": option,
                "max_image_size": size,
                "calls_at_once": at_once,
                "ort_threads_per_call": settings.threads or cores,
                "photos_per_s": rate(backend, blobs, size, at_once),
                # at another size the features differ by design: its quality is landmark
                # eval's (docs/quality.md), not a difference from the default's
                "features_against_default": (
                    difference(backend, reference, blobs, size) if size == 1024 else None
                ),
            }
        )

    every_core = replace(default, threads=cores)
    row("previous path, as the service ran it", replace(every_core, head="numpy"), 1024, 2)
    row("previous path, one thread per call", replace(default, head="numpy"), 1024, 2)
    row("default: whole graph, one thread per call", default, 1024, 2)
    row("whole graph, every core per call", every_core, 1024, 2)
    row("whole graph, one call at a time on every core", every_core, 1024, 1)
    for level in OPTIMIZATIONS:
        row(f"optimisation {level}", replace(default, optimization=level), 1024, 2)
    row("768 px", default, 768, 2)
    batched = AlikedBackend(every_core)  # one session for every batch size
    for batch in (1, 2, 4):
        print(f"  batches of {batch} ...", flush=True)
        rows.append(
            {
                "option": f"batches of {batch} photos of one size, every core",
                "max_image_size": 1024,
                "calls_at_once": 1,
                "ort_threads_per_call": cores,
                "photos_per_s": batch_rate(batched, blobs, batch),
                "features_against_default": batch_difference(batched, reference, blobs, batch),
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        print("  calibrating int8 ...", flush=True)
        int8_dir = quantised_model_dir(default.variant, Path(tmp))
        row("int8 QDQ convolutions", replace(default, model_dir=int8_dir), 1024, 2)
    previous = rows[0]["photos_per_s"]
    for r in rows:
        r["against_previous_path"] = round(r["photos_per_s"] / previous, 2)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return {"machine": describe(), "date": when, "photos": len(blobs), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_options.json")
    args = parser.parse_args(argv)
    report = measure()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| option | px | calls at once | threads per call | photos/s | x previous |")
    for r in report["rows"]:
        print(
            f"| {r['option']} | {r['max_image_size']} | {r['calls_at_once']} | "
            f"{r['ort_threads_per_call']} | {r['photos_per_s']} | {r['against_previous_path']} |"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
