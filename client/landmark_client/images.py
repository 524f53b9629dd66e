"""Turn what a caller holds (a path, bytes, a numpy array, a PIL image) into encoded bytes.

Arrays are encoded as PNG with the standard library alone, so the SDK needs no imaging
library.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any, Union

import numpy as np

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]


def to_image_bytes(image: ImageInput) -> bytes:
    """Encoded image bytes for ``image``; ``TypeError``/``ValueError`` for what cannot be."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        if os.path.isdir(image):
            raise ValueError(
                f"{os.fspath(image)} is a folder: give the path of one photo (a labeled folder "
                "is indexed with `landmark index`)"
            )
        if not os.path.exists(image):
            raise FileNotFoundError(f"no such photo: {os.fspath(image)}")
        with open(image, "rb") as fh:
            return fh.read()
    if isinstance(image, np.ndarray):
        return encode_png(image)
    if hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image, without importing PIL
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(
        f"cannot use {type(image).__name__} as an image: pass a path, bytes, a numpy array "
        "or a PIL image"
    )


def encode_png(array: np.ndarray) -> bytes:
    """Encode [H, W] gray, [H, W, 3] RGB or [H, W, 4] RGBA as PNG (uint8, or float in [0, 1])."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise ValueError("image array contains NaN or infinite values")
            arr = np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        else:
            raise ValueError(f"image array dtype {arr.dtype} is not supported")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        color_type = 0  # grayscale
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        color_type = 2 if arr.shape[2] == 3 else 6  # RGB, RGBA
    else:
        raise ValueError(f"image array must be [H, W], [H, W, 3] or [H, W, 4]; got {arr.shape}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image array is empty: shape {arr.shape}")
    rows = arr.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
