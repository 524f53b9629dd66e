"""Features of the real photos (extracted once per backend, cached) and the extraction
throughput of each backend at each image size."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import DATA

PREVIOUS_ALIKED = "aliked, previous path (numpy head)"


def extract_real(cache: Path, backend: str) -> dict:
    from extractor_service.backends import create_backend
    from extractor_service.extractor import FeatureExtractor, Limits
    from landmark_client.gallery import scan

    core = FeatureExtractor(create_backend(backend), Limits())
    images = scan(DATA)
    feats = {g.image_id: core.extract(g.path.read_bytes()).features for g in images}
    arrays = {}
    for i, g in enumerate(images):
        f = feats[g.image_id]
        arrays[f"d{i}"], arrays[f"l{i}"] = f.descriptors, f.locations
        # the detector's scores: a search looks up neighbours for the strongest only
        arrays[f"s{i}"] = f.strengths
    never_queried = [feats[g.image_id].descriptors for g in images if g.label == "distractor"]
    never_queried += [f.descriptors for f in _sample_photo_features(core)]
    np.savez(
        cache,
        pool=np.concatenate(never_queried),
        ids=np.array([g.image_id for g in images]),
        labels=np.array([g.label for g in images]),
        sizes=np.array([f.image_size for f in feats.values()]),
        backend=np.array(backend),
        **arrays,
    )
    return {"images": len(images)}


def _sample_photo_features(core) -> list:  # noqa: ANN001
    """Features of scikit-image's photos and of two generated views of each: real
    descriptors of photos that are never queries, for the ``real`` padding."""
    import io

    import skimage
    from PIL import Image

    from landmark_client.demo import synthetic_views

    folder = Path(skimage.__file__).parent / "data"
    photos = [p for p in sorted(folder.glob("*")) if p.suffix in (".png", ".jpg")]
    out = []
    for i, path in enumerate(photos):
        with Image.open(path) as img:
            if min(img.size) < 256:
                continue
        views = [Image.open(path).convert("RGB")] + [v for _, v in synthetic_views(path, i)]
        for view in views:
            buf = io.BytesIO()
            view.save(buf, format="PNG")
            out.append(core.extract(buf.getvalue()).features)
    return out


def load_pool(cache: Path) -> np.ndarray:
    return np.load(cache)["pool"]


def load_real(cache: Path):
    from landmark.wire import Features

    z = np.load(cache)
    backend = str(z["backend"])
    out = []
    for i, (image_id, label) in enumerate(zip(z["ids"], z["labels"], strict=True)):
        size = tuple(int(v) for v in z["sizes"][i])
        f = Features(backend, z[f"l{i}"], z[f"d{i}"], size, strengths=z[f"s{i}"])
        out.append((str(image_id), str(label), f))
    return out


def extraction_throughput(n_images: int = 16) -> list[dict]:
    """Photos per second of each backend at each size, one and two calls at once, the
    better of two passes taken in turn. The aliked extractor's previous path (network
    graph, then detection and descriptor head in numpy: ``--aliked-head numpy``) runs
    beside the default in the same run."""
    from extractor_service.backends import AlikedSettings, DelfSettings, create_backend
    from extractor_service.extractor import FeatureExtractor, Limits
    from landmark_client.gallery import scan

    blobs = [g.path.read_bytes() for g in scan(DATA)[:n_images]]
    rows = []
    cores = os.cpu_count() or 1
    # (label, backend, its aliked settings for n calls at once): the default is run as the
    # service runs it (ONNX Runtime threads = cores / calls at once), the previous path as
    # the service ran it (every core for each call)
    backends = [
        ("sift", "sift", lambda n: None),
        ("aliked", "aliked", lambda n: AlikedSettings(threads=max(1, cores // n))),
        (PREVIOUS_ALIKED, "aliked", lambda n: AlikedSettings(head="numpy")),
    ]
    if os.environ.get("LANDMARK_DELF_MODEL"):
        backends.append(("delf", "delf", lambda n: None))
    delf = DelfSettings(os.environ.get("LANDMARK_DELF_MODEL", ""))
    for threads in (1, 2):
        measured = {}
        for label, name, aliked in backends:
            backend = create_backend(name, aliked=aliked(threads), delf=delf)
            backend.warmup()
            measured[label] = (FeatureExtractor(backend, Limits()), name)
        for size in (512, 768, 1024):
            # each backend twice, in turn, the better pass kept: the machine's speed drifts
            best = dict.fromkeys(measured, float("inf"))
            for _ in range(2):
                for label, (core, _) in measured.items():
                    t = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(lambda b, s=size, c=core: c.extract(b, 1000, s), blobs))
                    best[label] = min(best[label], time.perf_counter() - t)
            for label, (_, name) in measured.items():
                rate = len(blobs) / best[label]
                # SIFT runs one call per core; the networks spread each call over all cores.
                used = threads if name == "sift" else cores
                rows.append(
                    {
                        "backend": label,
                        "max_image_size": size,
                        "threads": threads,
                        "cores_used": used,
                        "images_per_s": round(rate, 2),
                        "images_per_s_per_core": round(rate / used, 2),
                    }
                )
    rows.sort(key=lambda r: [b[0] for b in backends].index(r["backend"]))
    if "delf" not in [b[0] for b in backends]:
        rows.append(
            {
                "backend": "delf",
                "note": "not measured: the real google/delf/1 module "
                "cannot be downloaded here; set LANDMARK_DELF_MODEL to measure it",
            }
        )
    return rows


def aliked_speedups(rows: list[dict]) -> list[dict]:
    """The default aliked extractor's photos/s over the previous path's, size by size."""
    previous = {
        (r["max_image_size"], r["threads"]): r["images_per_s"]
        for r in rows
        if r["backend"] == PREVIOUS_ALIKED
    }
    return [
        {
            "max_image_size": r["max_image_size"],
            "threads": r["threads"],
            "speedup": round(r["images_per_s"] / previous[r["max_image_size"], r["threads"]], 2),
        }
        for r in rows
        if r["backend"] == "aliked" and (r["max_image_size"], r["threads"]) in previous
    ]


# -- one database size, in a child process (so peak memory is its own) ------------------
