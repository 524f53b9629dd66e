"""`landmark demo`: start both services, index a gallery, query it, draw a match, stop.

With no gallery it uses real photographs shipped inside scikit-image (no network) and
queries them with SYNTHETIC views: perspective warps, crops, rotations, scale and lighting
changes. With --gallery DIR it indexes your labeled photos and queries each one against
all the others (leave-one-out).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from . import gallery as gallery_mod
from .client import LandmarkClient
from .drawing import draw_matches
from .evaluation import evaluate
from .gallery import DISTRACTOR_LABEL
from .indexing import index_gallery
from .local import local_services

# Photos that ship inside scikit-image's wheel (skimage/data), with a label each.
SAMPLE_PHOTOS = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea_the_cat": "chelsea.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
}
UNKNOWN_PHOTO = "brick.png"  # never indexed: the demo expects "no match"


def _sample_path(name: str) -> Path:
    try:
        import skimage
    except ImportError:
        raise RuntimeError(
            "the default demo gallery needs scikit-image (`make install` "
            "brings it); or pass --gallery DIR"
        ) from None
    path = Path(skimage.__file__).parent / "data" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the scikit-image install")
    return path


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points dst → input src."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return list(np.linalg.solve(np.array(rows, float), src.reshape(-1).astype(float)))


def synthetic_views(path: Path, seed: int) -> list[tuple[str, Any]]:
    """Two generated views of a photo: (description, PIL image)."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(seed)
    img = Image.open(path).convert("RGB")
    w, h = img.size
    # 1. Perspective warp (the camera moved sideways) with darker, lower-contrast light.
    j = 0.12
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    dst = src + rng.uniform(-j, j, (4, 2)) * [w, h] * np.array(
        [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    ).clip(0, 1)
    warped = img.transform(
        (w, h),
        Image.Transform.PERSPECTIVE,
        _perspective_coeffs(src, dst),
        Image.Resampling.BICUBIC,
        fillcolor=(128, 128, 128),
    )
    warped = ImageEnhance.Contrast(ImageEnhance.Brightness(warped).enhance(0.7)).enhance(0.8)
    # 2. Crop 75%, rotate 15-25 degrees, scale to 60%, brighter.
    cw, ch = int(w * 0.75), int(h * 0.75)
    x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
    view = img.crop((x0, y0, x0 + cw, y0 + ch)).rotate(
        float(rng.uniform(15, 25)),
        resample=Image.Resampling.BICUBIC,
        expand=True,
        fillcolor=(0, 0, 0),
    )
    view = view.resize((int(view.width * 0.6), int(view.height * 0.6)), Image.Resampling.LANCZOS)
    view = ImageEnhance.Brightness(view).enhance(1.3)
    return [("perspective + darker", warped), ("crop + rotate + 60% scale + brighter", view)]


def _build_sample_gallery(out: Path) -> tuple[Path, list[tuple[Path, str, str]]]:
    gallery, queries = out / "gallery", out / "queries"
    for folder in (gallery, queries):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    cases = []
    for i, (label, name) in enumerate(SAMPLE_PHOTOS.items()):
        src = _sample_path(name)
        (gallery / label).mkdir()
        shutil.copy(src, gallery / label / name)
        for k, (what, view) in enumerate(synthetic_views(src, seed=i)):
            path = queries / f"{label}_view{k + 1}.png"
            view.save(path)
            cases.append((path, label, what))
    unknown = queries / "unknown_brick.png"
    shutil.copy(_sample_path(UNKNOWN_PHOTO), unknown)
    cases.append((unknown, "", "a photo that is not in the gallery"))
    return gallery, cases


def run_demo(gallery: str | None, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with local_services() as (extractor, search):
        print(f"services up: extractor {extractor}, search {search} (loopback)")
        with LandmarkClient(extractor, search, timeout=120) as client:
            if gallery:
                return _user_gallery(Path(gallery), client, out)
            folder, cases = _build_sample_gallery(out)
            report = index_gallery(folder, client)
            print(f"indexed {report.added} photos from scikit-image's sample data ({folder})")
            print(
                "querying with SYNTHETIC views of them (generated warps, crops, rotations, "
                "scale and lighting changes; not new photographs):\n"
            )
            print(f"  {'query':<34} {'expected':<17} {'best guess':<17} {'inliers':>7}")
            correct, picture = 0, None
            for path, label, what in cases:
                rec = client.recognize(path, include_matches=True)
                guess = rec.label or "no match"
                ok = guess == (label or "no match")
                correct += ok
                inliers = rec.best.inliers if rec.best else 0
                print(
                    f"  {path.name:<34} {label or 'no match':<17} {guess:<17} {inliers:>7}  "
                    f"{'ok' if ok else 'WRONG'}  ({what})"
                )
                if picture is None and rec.best is not None and "rotate" in what:
                    picture = draw_matches(
                        path,
                        folder / rec.best.image_id,
                        rec.best.query_locations,
                        rec.best.database_locations,
                        out / "demo-match.png",
                        f"{path.name} -> {rec.best.image_id}: {inliers} verified inliers",
                    )
            print(f"\n{correct} of {len(cases)} answers correct")
            if picture:
                print(f"match picture: {picture}")
    print("services stopped")
    return 0 if correct == len(cases) else 1


def _user_gallery(folder: Path, client: LandmarkClient, out: Path) -> int:
    print(f"leave-one-out over your gallery {folder}: each photo queried against the others")
    report = evaluate(folder, client)
    for row in report["misses"]:
        print(f"  miss: {row['image_id']} ({row['label']}) -> {row['predicted'] or 'no match'}")
    print(
        f"top-1 {report['top1']:.3f} over {report['queries']} queries, mAP {report['map']:.3f}"
        f", no match {report['no_match']}"
    )
    picture = _draw_first_match(folder, client, out / "demo-match.png")
    print(f"match picture: {picture}" if picture else "no photo matched another: no picture")
    return 0


def _draw_first_match(folder: Path, client: LandmarkClient, out: Path) -> Path | None:
    """The verified matches of the first photo that finds another of its landmark."""
    for photo in gallery_mod.scan(folder):
        if photo.label == DISTRACTOR_LABEL:
            continue
        rec = client.recognize(photo.path, include_matches=True, exclude=[photo.image_id])
        best = rec.best
        if best is not None and best.label == photo.label:
            return draw_matches(
                photo.path,
                folder / best.image_id,
                best.query_locations,
                best.database_locations,
                out,
                f"{photo.image_id} -> {best.image_id}: {best.inliers} verified inliers",
            )
    return None
