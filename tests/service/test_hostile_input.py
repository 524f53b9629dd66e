"""A hostile-input corpus, generated here, against a real extractor on loopback.

Every input gets its expected status, and the server answers a health check after each.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import grpc
import numpy as np
import pytest
from PIL import Image

from landmark_client import LandmarkError
from tests.conftest import encode, sample_photo


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 30000) -> bytes:
    """A valid grayscale PNG of side x side black pixels (~900 MB decoded, ~1 MB on the wire)."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    parts = [z.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(z.compress(row * (side % 1000)) + z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _photo(size: int = 320) -> Image.Image:
    return Image.open(sample_photo()).convert("RGB").resize((size, size))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_rotated() -> bytes:
    img = _photo().crop((0, 0, 320, 200))  # 320 wide, 200 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    return _save(img, "JPEG", exif=exif.tobytes())


def _rgb16() -> bytes:
    gray = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    return _save(Image.fromarray(gray), "PNG")


INVALID = grpc.StatusCode.INVALID_ARGUMENT
OK = grpc.StatusCode.OK

# name -> (bytes factory, expected status, what the answer must show: the error's words, or
# the least number of keypoints, or the (width, height) of an image with nothing to detect)
CORPUS = {
    "empty": (lambda: b"", INVALID, "empty"),
    "truncated jpeg": (lambda: _save(_photo(), "JPEG")[:2000], INVALID, "corrupt|truncated"),
    "random bytes": (
        lambda: np.random.default_rng(0).bytes(5000),
        INVALID,
        "not a recognised format",
    ),
    "text": (lambda: b"hello, this is not an image\n" * 20, INVALID, "not a recognised format"),
    "svg": (
        lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
            b'<rect width="100" height="100"/></svg>'
        ),
        INVALID,
        "not a recognised format",
    ),
    "png bomb 30000x30000": (png_bomb, INVALID, "30000x30000 = 900000000 pixels"),
    "20000x4": (lambda: encode(np.full((4, 20000, 3), 90, np.uint8)), OK, (20000, 4)),
    "1x1": (lambda: encode(np.zeros((1, 1, 3), np.uint8)), OK, (1, 1)),
    "blank": (lambda: encode(np.full((400, 600, 3), 255, np.uint8)), OK, (600, 400)),
    "16-bit": (_rgb16, OK, 50),
    "alpha": (lambda: _save(_photo().convert("RGBA"), "PNG"), OK, 50),
    "palette": (lambda: _save(_photo().convert("P"), "PNG"), OK, 50),
    "cmyk jpeg": (lambda: _save(_photo().convert("CMYK"), "JPEG"), OK, 50),
    "webp": (lambda: _save(_photo(), "WEBP", quality=90), OK, 50),
    "bmp": (lambda: _save(_photo(), "BMP"), OK, 50),
    "tiff": (lambda: _save(_photo(), "TIFF"), OK, 50),
    "exif rotated": (_exif_rotated, OK, 50),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_corpus(extractor, name):
    make, expected, check = CORPUS[name]
    data = make()
    if expected is OK:
        f = extractor.extract(data, max_features=200)
        if isinstance(check, tuple):  # a uniform image: an empty answer of the right size
            assert (len(f), f.image_size) == (0, check)
            assert f.descriptors.shape == (0, f.dimension) and f.locations.shape == (0, 2)
        else:
            assert len(f) >= check, f"{name}: only {len(f)} features"
        assert np.isfinite(f.locations).all() and np.isfinite(f.descriptors).all()
        if name == "exif rotated":
            assert f.image_size == (200, 320)  # upright: the EXIF rotation was applied
            assert f.locations[:, 0].max() < 200 and f.locations[:, 1].max() < 320
    else:
        with pytest.raises(LandmarkError) as err:
            extractor.extract(data)
        assert err.value.code is expected, err.value
        assert re.search(check, err.value.details), err.value.details
    assert extractor.health() == "SERVING"
