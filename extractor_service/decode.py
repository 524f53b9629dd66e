"""Decode an uploaded image into an upright 8-bit RGB array, refusing what is unsafe.

The pixel count is checked from the header, before any pixel is decoded, so a
decompression bomb costs nothing. EXIF orientation is applied; grayscale, alpha,
palette, 16-bit, float and CMYK images are converted to RGB.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own bomb guard is replaced by the explicit limit below (it only warns by default).
Image.MAX_IMAGE_PIXELS = None

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


class ImageError(ValueError):
    """The bytes are not an image this service can use; the message says why."""


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Return the image as a C-contiguous uint8 array [H, W, 3] (RGB, EXIF-upright)."""
    if not data:
        raise ImageError("image is empty: send the bytes of a JPEG, PNG, WebP, BMP or TIFF file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd headers; we refuse below
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            f"image is not a recognised format ({len(data)} bytes, starting {data[:8]!r}); "
            f"send one of {', '.join(FORMATS)}"
        ) from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError(f"image header is corrupt: {exc}") from None
    if img.format not in FORMATS:
        raise ImageError(f"unsupported image format {img.format}; send one of {', '.join(FORMATS)}")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels, above this service's limit "
            f"of {max_pixels}; downscale it before sending"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            img = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise ImageError(f"image data is corrupt or truncated: {exc}") from None
    return _to_rgb8(img)


def _to_rgb8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        else:
            arr = arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0
        gray = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBA → RGB
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
