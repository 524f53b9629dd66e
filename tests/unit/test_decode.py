import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from extractor_service.decode import ImageError, decode_image
from tests.conftest import encode

LIMIT = 10_000_000


@pytest.fixture()
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_formats_decode_to_upright_rgb(rgb, fmt):
    out = decode_image(encode(rgb, fmt), LIMIT)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):
        np.testing.assert_array_equal(out, rgb)


def test_exif_orientation_is_applied(rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(rgb, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image(data, LIMIT)
    assert out.shape == (60, 40, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_modes_convert_to_rgb(rgb, mode):
    img = Image.fromarray(rgb)
    if mode == "I;16":
        arr16 = rgb[:, :, 0].astype(np.uint16) * 257
        img = Image.fromarray(arr16)
        assert img.mode.startswith("I;16")
    else:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode == "CMYK" else "PNG")
    out = decode_image(buf.getvalue(), LIMIT)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    if mode == "I;16":
        np.testing.assert_array_equal(out[:, :, 0], rgb[:, :, 0])


def test_alpha_is_composited_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    out = decode_image(encode(rgba, "PNG"), LIMIT)
    assert (out == 255).all()


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_decompression_bomb_is_refused_from_the_header():
    data = _png_header_only(100_000, 100_000)  # 10 gigapixels claimed in ~100 bytes
    with pytest.raises(ImageError, match="above this service's limit"):
        decode_image(data, LIMIT)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"not an image at all", "not a recognised format"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "corrupt|not a recognised"),
    ],
)
def test_bad_bytes_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data, LIMIT)


def test_truncated_jpeg_raises(rgb):
    data = encode(np.repeat(np.repeat(rgb, 8, 0), 8, 1), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 3], LIMIT)


def test_unsupported_format_is_named(rgb):
    with pytest.raises(ImageError, match="unsupported image format GIF"):
        decode_image(encode(rgb, "GIF"), LIMIT)
