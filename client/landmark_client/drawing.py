"""Pictures of verified matches: the two images side by side, inliers joined by lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_matches(
    image1: str | Path | bytes,
    image2: str | Path | bytes,
    points1: np.ndarray | None,
    points2: np.ndarray | None,
    out: str | Path,
    title: str = "",
    height: int = 600,
    max_lines: int = 150,
) -> Path:
    """Write a PNG with image1 left, image2 right and a line per correspondence (a random
    sample of ``max_lines`` of them when there are more, said in the title)."""
    import io

    from PIL import Image, ImageDraw, ImageFont, ImageOps

    def load(src: str | Path | bytes) -> Image.Image:
        img = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
        return ImageOps.exif_transpose(img).convert("RGB")

    left, right = load(image1), load(image2)
    s1, s2 = height / left.height, height / right.height
    left = left.resize((max(1, round(left.width * s1)), height), Image.Resampling.LANCZOS)
    right = right.resize((max(1, round(right.width * s2)), height), Image.Resampling.LANCZOS)
    points1 = np.zeros((0, 2)) if points1 is None else np.asarray(points1).reshape(-1, 2)
    points2 = np.zeros((0, 2)) if points2 is None else np.asarray(points2).reshape(-1, 2)
    rng = np.random.default_rng(0)
    if len(points1) > max_lines:
        pick = np.sort(rng.choice(len(points1), max_lines, replace=False))
        title += f"  (showing {max_lines} of {len(points1)})"
        points1, points2 = points1[pick], points2[pick]
    band = 40 if title else 0
    canvas = Image.new("RGB", (left.width + right.width + 10, height + band), "white")
    canvas.paste(left, (0, band))
    canvas.paste(right, (left.width + 10, band))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((10, 10), title, fill="black", font=ImageFont.load_default(size=18))
    for (x1, y1), (x2, y2) in zip(points1, points2, strict=True):
        color = tuple(int(c) for c in rng.integers(40, 256, 3))
        a = (x1 * s1, y1 * s1 + band)
        b = (x2 * s2 + left.width + 10, y2 * s2 + band)
        draw.line([a, b], fill=color, width=1)
        for x, y in (a, b):
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=color, width=2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def draw_pr_curve(rows: list[dict], out: str | Path, title: str = "") -> Path:
    """Precision (y) against recall (x) as the inlier threshold moves, with a few
    thresholds marked along the curve."""
    from PIL import Image, ImageDraw, ImageFont

    w, h, pad = 640, 480, 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)

    def xy(recall: float, precision: float) -> tuple[float, float]:
        return pad + recall * (w - 2 * pad), h - pad - precision * (h - 2 * pad)

    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = xy(t, 0)
        draw.text((x - 10, y + 6), f"{t:.2f}", fill="black", font=font)
        x, y = xy(0, t)
        draw.text((x - 45, y - 8), f"{t:.2f}", fill="black", font=font)
    draw.text((w / 2 - 30, h - 28), "recall", fill="black", font=font)
    draw.text((6, 30), "precision", fill="black", font=font)
    if title:
        draw.text((pad, 8), title, fill="black", font=font)
    points = [xy(r["recall"], r["precision"]) for r in sorted(rows, key=lambda r: r["recall"])]
    if len(points) > 1:
        draw.line(points, fill=(30, 90, 200), width=3)
    for r in rows:
        if r["threshold"] in (4, 10, 16, 40):
            x, y = xy(r["recall"], r["precision"])
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(200, 40, 40))
            draw.text((x + 6, y - 16), f"{r['threshold']} inliers", fill=(200, 40, 40), font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
