import io

import numpy as np
import pytest
from PIL import Image

from landmark_client.images import encode_png, to_image_bytes


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3), (7, 9, 4), (7, 9, 1)])
def test_png_encoder_round_trips_through_pillow(shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(arr))))
    np.testing.assert_array_equal(back, arr.reshape(back.shape))


def test_float_arrays_in_unit_range_are_scaled():
    arr = np.array([[0.0, 1.0]], np.float32)
    back = np.asarray(Image.open(io.BytesIO(encode_png(arr))))
    assert back.tolist() == [[0, 255]]


def test_inputs_of_every_kind(tmp_path):
    arr = np.zeros((4, 4, 3), np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    raw = path.read_bytes()
    assert to_image_bytes(str(path)) == raw
    assert to_image_bytes(path) == raw
    assert to_image_bytes(raw) == raw
    assert to_image_bytes(bytearray(raw)) == raw
    assert to_image_bytes(arr).startswith(b"\x89PNG")
    assert to_image_bytes(Image.fromarray(arr)).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "bad, error",
    [
        (12, TypeError),
        (np.zeros((2, 2, 5), np.uint8), ValueError),
        (np.zeros((0, 3), np.uint8), ValueError),
        (np.array([[np.nan]]), ValueError),
    ],
)
def test_bad_inputs(bad, error):
    with pytest.raises(error):
        to_image_bytes(bad)
