import numpy as np
import pytest

from landmark.v1 import features_pb2
from landmark.wire import Features, features_from_proto, features_to_proto, matrix_to_proto


def _features(n=5, d=128) -> Features:
    rng = np.random.default_rng(0)
    return Features(
        "sift",
        rng.random((n, 2), dtype=np.float32) * 100,
        rng.random((n, d), dtype=np.float32),
        (640, 480),
        scales=rng.random(n, dtype=np.float32),
        strengths=None,
    )


def test_round_trip_is_exact():
    f = _features()
    msg = features_to_proto(f)
    assert msg.descriptors.shape == [5, 128] and len(msg.descriptors.data) == 5 * 128 * 4
    back = features_from_proto(features_pb2.Features.FromString(msg.SerializeToString()))
    np.testing.assert_array_equal(back.descriptors, f.descriptors)
    np.testing.assert_array_equal(back.locations, f.locations)
    np.testing.assert_array_equal(back.scales, f.scales)
    assert back.strengths is None and back.image_size == (640, 480) and back.backend == "sift"


def test_bytes_are_little_endian_float32():
    msg = matrix_to_proto(np.array([[1.0, 2.0]], np.float32))
    assert msg.data == np.array([1.0, 2.0], "<f4").tobytes()


def test_zero_features_are_valid():
    f = Features("sift", np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (10, 10))
    back = features_from_proto(features_to_proto(f))
    assert len(back) == 0 and back.dimension == 128


def _broken(**changes) -> features_pb2.Features:
    msg = features_to_proto(_features())
    for key, value in changes.items():
        if key == "nan":
            arr = np.frombuffer(msg.descriptors.data, "<f4").copy()
            arr[3] = value
            msg.descriptors.data = arr.tobytes()
        elif key == "locations_rows":
            msg.locations.CopyFrom(matrix_to_proto(np.zeros((value, 2), np.float32)))
        elif key == "short_data":
            msg.descriptors.data = msg.descriptors.data[:-4]
        else:
            setattr(msg, key, value)
    return msg


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"nan": np.nan}, "NaN or infinite"),
        ({"nan": np.inf}, "NaN or infinite"),
        ({"locations_rows": 4}, "5 descriptors but 4 locations"),
        ({"short_data": True}, "needs 2560 bytes"),
        ({"dimension": 40}, "expected 40 columns"),
        ({"dimension": 0}, "dimension must be positive"),
        ({"backend": ""}, "backend is empty"),
    ],
)
def test_bad_features_are_refused_with_a_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        features_from_proto(_broken(**changes))
