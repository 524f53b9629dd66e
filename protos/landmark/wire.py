"""The wire format: numpy arrays <-> ``landmark.v1`` messages.

Matrices travel as a shape plus packed little-endian float32 bytes. Decoding validates
everything a caller could get wrong (shape, byte length, NaN/inf, dimension) and raises
``ValueError`` with a message that says what to fix; servers map it to INVALID_ARGUMENT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landmark.v1 import features_pb2

_F32 = np.dtype("<f4")


def matrix_to_proto(array: np.ndarray) -> features_pb2.Float32Matrix:
    """Pack a numpy array as a Float32Matrix (row-major little-endian float32)."""
    arr = np.ascontiguousarray(array, dtype=_F32)
    return features_pb2.Float32Matrix(shape=list(arr.shape), data=arr.tobytes())


def matrix_from_proto(
    msg: features_pb2.Float32Matrix, name: str, ndim: int, cols: int | None = None
) -> np.ndarray:
    """Unpack a Float32Matrix, checking its rank, column count, byte length and values."""
    shape = tuple(int(s) for s in msg.shape)
    if not shape and not msg.data:
        return np.zeros((0,) if ndim == 1 else (0, cols or 0), dtype=np.float32)
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D matrix, got shape {list(shape)}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{name}: negative size in shape {list(shape)}")
    if cols is not None and ndim == 2 and shape[1] != cols:
        raise ValueError(f"{name}: expected {cols} columns, got shape {list(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    if len(msg.data) != count * 4:
        raise ValueError(
            f"{name}: shape {list(shape)} needs {count * 4} bytes of float32, got {len(msg.data)}"
        )
    arr = np.frombuffer(msg.data, dtype=_F32).reshape(shape).astype(np.float32)
    if count and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


@dataclass(frozen=True)
class Features:
    """Local features of one image.

    ``locations`` is [N, 2] (x, y) in pixels of the original (EXIF-upright) image;
    ``descriptors`` is [N, D], L2-normalised; ``scales`` and ``strengths`` are [N] or None.
    """

    backend: str
    locations: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]  # (width, height)
    scales: np.ndarray | None = None
    strengths: np.ndarray | None = None

    @property
    def dimension(self) -> int:
        return int(self.descriptors.shape[1])

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])


def features_to_proto(features: Features) -> features_pb2.Features:
    msg = features_pb2.Features(
        backend=features.backend,
        dimension=features.dimension,
        locations=matrix_to_proto(features.locations),
        descriptors=matrix_to_proto(features.descriptors),
        image_width=int(features.image_size[0]),
        image_height=int(features.image_size[1]),
    )
    if features.scales is not None:
        msg.scales.CopyFrom(matrix_to_proto(features.scales))
    if features.strengths is not None:
        msg.strengths.CopyFrom(matrix_to_proto(features.strengths))
    return msg


def features_from_proto(msg: features_pb2.Features) -> Features:
    """Decode and validate a Features message."""
    if not msg.backend:
        raise ValueError("features.backend is empty: name the backend that made the features")
    if msg.dimension <= 0:
        raise ValueError(f"features.dimension must be positive, got {msg.dimension}")
    dim = int(msg.dimension)
    descriptors = matrix_from_proto(msg.descriptors, "features.descriptors", 2, dim)
    locations = matrix_from_proto(msg.locations, "features.locations", 2, 2)
    n = descriptors.shape[0]
    if locations.shape[0] != n:
        raise ValueError(
            f"features: {n} descriptors but {locations.shape[0]} locations; they must match"
        )
    optional = {}
    for field in ("scales", "strengths"):
        if msg.HasField(field):
            vec = matrix_from_proto(getattr(msg, field), f"features.{field}", 1)
            if vec.shape[0] == n:
                optional[field] = vec
            elif vec.shape[0] != 0:
                raise ValueError(f"features.{field}: {vec.shape[0]} values for {n} keypoints")
    if msg.image_width < 0 or msg.image_height < 0:
        raise ValueError("features.image_width/image_height must not be negative")
    return Features(
        backend=msg.backend,
        locations=locations,
        descriptors=descriptors,
        image_size=(int(msg.image_width), int(msg.image_height)),
        scales=optional.get("scales"),
        strengths=optional.get("strengths"),
    )
