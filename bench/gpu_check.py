"""`make gpu-check`: is the aliked extractor using a CUDA GPU here, and how fast is it?

For each ALIKED variant it reports the ONNX Runtime provider the session actually runs on,
the milliseconds per photo at batch 1 and batch 8 (1024 x 768 photos), and the parity of
the GPU's features with the CPU path's on 10 real photos (same keypoints, descriptor
differences). It also lists what the extraction graph returns: nothing of the feature
map's size (C x H x W) leaves the device. Writes bench/results/gpu.json.

On a machine without a CUDA GPU (or without onnxruntime-gpu) it says "no GPU", still
writes the file, and exits 0, so it runs in CI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, RESULTS, feature_difference
from bench.machine import describe

PHOTOS = 10
SIZE = (768, 1024)  # height, width: a 4:3 photo at the default 1024 px
MAX_FEATURES = 1000


def real_photos(count: int) -> list[np.ndarray]:
    import cv2

    from extractor_service.decode import decode_image
    from landmark_client.gallery import scan

    out = []
    items = scan(DATA)
    for item in items[:: max(1, len(items) // count)][:count]:
        image = decode_image(item.path.read_bytes(), 40_000_000)
        out.append(cv2.resize(image, SIZE[::-1], interpolation=cv2.INTER_AREA))
    return out


def graph_outputs(backend) -> list[dict]:  # noqa: ANN001
    return [{"name": o.name, "shape": o.shape} for o in backend.session.get_outputs()]


def nodes_on_cpu(backend, photo: np.ndarray) -> dict:  # noqa: ANN001
    """Operator types ONNX Runtime placed on the CPU beside the GPU (each one costs copies
    between host and device), by count, from a profiled run."""
    from dataclasses import replace

    from extractor_service.backends.aliked import AlikedBackend

    profiled = AlikedBackend(replace(backend.settings, profile=str(RESULTS / "gpu-profile")))
    profiled.extract(photo, MAX_FEATURES)
    trace = Path(profiled.session.end_profiling())
    counts: dict[str, int] = {}
    for event in json.loads(trace.read_text()):
        args = event.get("args", {})
        if event.get("cat") == "Node" and args.get("provider") == "CPUExecutionProvider":
            counts[args["op_name"]] = counts.get(args["op_name"], 0) + 1
    trace.unlink()
    return counts


def ms_per_photo(backend, photos: list[np.ndarray], batch: int, rounds: int = 3) -> float:  # noqa: ANN001
    images = (photos * batch)[:batch]
    backend.extract_batch(images, MAX_FEATURES, backend.settings.threshold)  # warm up
    start = time.perf_counter()
    for _ in range(rounds):
        backend.extract_batch(images, MAX_FEATURES, backend.settings.threshold)
    return round((time.perf_counter() - start) * 1000 / (rounds * batch), 1)


def parity(gpu, cpu, photos: list[np.ndarray]) -> dict:  # noqa: ANN001
    return feature_difference(
        (gpu.extract(photo, MAX_FEATURES), cpu.extract(photo, MAX_FEATURES)) for photo in photos
    )


def check(out: Path) -> dict:
    import onnxruntime as ort

    from extractor_service.backends.aliked import VARIANTS, AlikedBackend, AlikedSettings

    providers = ort.get_available_providers()
    report: dict = {"machine": describe(), "onnxruntime": ort.__version__}
    report["available_providers"] = providers
    if "CUDAExecutionProvider" not in providers:
        report["gpu"] = False
        report["message"] = (
            "no GPU: ONNX Runtime offers " + ", ".join(providers) + "; on a machine with a "
            "CUDA GPU install the extractor with onnxruntime-gpu (pip install '.[aliked-gpu]')"
        )
        cpu = AlikedBackend(AlikedSettings())
        report["graph_outputs"] = graph_outputs(cpu)
    else:
        report["gpu"] = True
        photos = real_photos(PHOTOS)
        report["variants"] = {}
        for variant in VARIANTS:
            gpu = AlikedBackend(AlikedSettings(variant=variant))
            cpu = AlikedBackend(AlikedSettings(variant=variant, cpu_only=True))
            report["variants"][variant] = {
                "provider": gpu.session.get_providers()[0],
                "device": gpu.device,
                "ms_per_photo_batch_1": ms_per_photo(gpu, photos, 1),
                "ms_per_photo_batch_8": ms_per_photo(gpu, photos, 8),
                "parity_with_cpu": parity(gpu, cpu, photos),
                "graph_outputs": graph_outputs(gpu),
                "nodes_on_cpu": nodes_on_cpu(gpu, photos[0]),
            }
        report["message"] = "GPU: " + ", ".join(
            f"{v} {r['provider']} {r['ms_per_photo_batch_1']} ms/photo (batch 1), "
            f"{r['ms_per_photo_batch_8']} ms/photo (batch 8)"
            for v, r in report["variants"].items()
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    args = parser.parse_args(argv)
    report = check(args.out)
    print(report["message"])
    outputs = (
        report.get("graph_outputs") or next(iter(report["variants"].values()))["graph_outputs"]
    )
    print("the extraction graph returns " + ", ".join(f"{o['name']} {o['shape']}" for o in outputs))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
