"""Overlays as web photos carry them, drawn onto real photos: test material, never committed.

Each kind is drawn the way its maker stamps it, at the photo's own size, so that two photos
of different places carry the same overlay at the same place of their frames:

- ``watermark``: a stock agency's name, semi-transparent, repeated across the frame on a
  slanted grid centred on the photo, its size a fixed fraction of the photo's width;
- ``banner``: a dark caption banner along the bottom edge with the agency's logo, the
  photo's id (different on every photo) and the agency's address;
- ``logo``: a TV channel's logo in the top-right corner;
- ``timestamp``: the date and time a camera burns into the bottom-right corner (its digits
  differ from photo to photo, its font and place do not);
- ``letterbox``: black bars over the top and bottom of the frame.

``apply(kind, image, seed)`` returns a new uint8 RGB array; ``seed`` picks what varies per
photo (the banner's id, the timestamp's date).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("watermark", "banner", "logo", "timestamp", "letterbox")

AGENCY = "stockpix"
ADDRESS = "www.stockpix.com"
CHANNEL = "TV9 NEWS"


def _font(size: float) -> ImageFont.FreeTypeFont:
    # Pillow's own TrueType font: the same glyphs on every machine, no system font needed.
    return ImageFont.load_default(size=max(8, round(size)))


def _compose(image: np.ndarray, layer: Image.Image) -> np.ndarray:
    base = Image.fromarray(image).convert("RGBA")
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def watermark(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    font = _font(w / 11)
    text = f"{AGENCY}"
    left, top, right, bottom = font.getbbox(text)
    tw, th = right - left, bottom - top
    side = int(np.hypot(w, h)) + 2 * tw
    tile = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    step_x, step_y = round(tw * 1.5), round(th * 3.2)
    centre = side // 2
    for row, y in enumerate(range(centre % step_y - step_y, side, step_y)):
        shift = (step_x // 2) * (row % 2)
        for x in range(centre % step_x - step_x - shift, side, step_x):
            draw.text(
                (x, y), text, font=font, fill=(255, 255, 255, 110),
                stroke_width=max(1, round(th / 18)), stroke_fill=(40, 40, 40, 70),
            )  # fmt: skip
    tile = tile.rotate(25, resample=Image.Resampling.BICUBIC)
    offset = ((side - w) // 2, (side - h) // 2)
    layer = tile.crop((offset[0], offset[1], offset[0] + w, offset[1] + h))
    return _compose(image, layer)


def banner(image: np.ndarray, seed: int) -> np.ndarray:
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    band = max(24, round(w * 0.07))
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    top = h - band
    draw.rectangle((0, top, w, h), fill=(22, 22, 24, 235))
    font = _font(band * 0.42)
    small = _font(band * 0.3)
    pad = round(band * 0.25)
    # the logo: a white square holding the agency's initial, then its name
    draw.rectangle((pad, top + pad, pad + band - 2 * pad, h - pad), fill=(255, 255, 255, 255))
    draw.text((pad + band * 0.12, top + pad * 0.9), AGENCY[0], font=font, fill=(22, 22, 24, 255))
    draw.text((band + pad, top + band * 0.25), AGENCY, font=font, fill=(255, 255, 255, 255))
    ident = "".join(rng.choice(list("ABCDEFGHJKMNPRTWXY23456789"), 7))
    draw.text((w * 0.42, top + band * 0.33), f"Image ID: {ident}", font=small, fill=(230,) * 3)
    draw.text((w * 0.72, top + band * 0.33), ADDRESS, font=small, fill=(230, 230, 230, 255))
    return _compose(image, layer)


def logo(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    size = max(20, round(h * 0.09))
    font = _font(size * 0.55)
    left, top, right, bottom = font.getbbox(CHANNEL)
    box_w = right - left + size * 0.6
    x1, y1 = w - size * 0.4, size * 0.4
    x0, y0 = x1 - box_w, y1 + size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rounded_rectangle((x0, y1, x1, y0), radius=size * 0.2, fill=(200, 20, 30, 200))
    draw.text((x0 + size * 0.3, y1 + size * 0.18), CHANNEL, font=font, fill=(255, 255, 255, 235))
    return _compose(image, layer)


def timestamp(image: np.ndarray, seed: int) -> np.ndarray:
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hour, minute = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    text = f"2019/{month:02d}/{day:02d} {hour:02d}:{minute:02d}"
    font = _font(h / 24)
    left, top, right, bottom = font.getbbox(text)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    margin = h / 30
    draw.text(
        (w - margin - (right - left), h - margin - bottom), text, font=font,
        fill=(255, 150, 20, 255), stroke_width=1, stroke_fill=(120, 50, 0, 255),
    )  # fmt: skip
    return _compose(image, layer)


def letterbox(image: np.ndarray) -> np.ndarray:
    h = image.shape[0]
    out = image.copy()
    bar = round(h * 0.12)
    out[:bar] = 0
    out[h - bar :] = 0
    return out


def apply(kind: str, image: np.ndarray, seed: int = 0) -> np.ndarray:
    """``image`` (uint8 RGB [H, W, 3]) with the overlay ``kind`` drawn on it."""
    if kind == "watermark":
        return watermark(image)
    if kind == "banner":
        return banner(image, seed)
    if kind == "logo":
        return logo(image)
    if kind == "timestamp":
        return timestamp(image, seed)
    if kind == "letterbox":
        return letterbox(image)
    raise ValueError(f"unknown overlay {kind!r}: one of {', '.join(KINDS)}")


def stamp(image: np.ndarray, kinds: tuple[str, ...], seed: int = 0) -> np.ndarray:
    """``image`` with every overlay of ``kinds`` drawn on it, in that order."""
    for kind in kinds:
        image = apply(kind, image, seed)
    return image


def mask(kind: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Where ``kind`` changes a photo of ``shape`` [H, W, 3]: a bool mask [H, W] (the
    pixels it changes on a black photo or on a white one)."""
    black, white = np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)
    on_black = apply(kind, black, seed) != black
    on_white = apply(kind, white, seed) != white
    return (on_black | on_white).any(axis=2)


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """The photo as a web page serves it."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
