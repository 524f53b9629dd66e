"""The records of the write-ahead log: the index's own format, independent of the API.

A record is one kind byte and a body:

    b"I" image added     version (1 byte, = 1), header length (uint32 LE), the header
                         (UTF-8 JSON: image_id, label, metadata, backend, width, height,
                         rows, dimension), then descriptors [rows, dimension] and locations
                         [rows, 2] as little-endian float32
    b"R" images removed  UTF-8 JSON list of image ids
    b"A" image added     (read only) the landmark.v1.ImageEntry message that logs written
                         before the index had its own record format hold; replayed like
                         b"I", and gone from the directory once sealed into a segment

The log's framing (length, CRC) is wal.py's; a record that fails to decode here means a
bug or a foreign file, and the index refuses to load (IndexCorrupt) rather than guess.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from landmark.wire import Features

from ..errors import IndexCorrupt

IMAGE, REMOVE, LEGACY_IMAGE = b"I", b"R", b"A"
KINDS = IMAGE + REMOVE + LEGACY_IMAGE
IMAGE_VERSION = 1
_HEAD = struct.Struct("<BI")  # version, header length
_F32 = np.dtype("<f4")


@dataclass(frozen=True)
class Added:
    image_id: str
    label: str
    metadata: dict[str, str]
    features: Features


@dataclass(frozen=True)
class Removed:
    image_ids: list[str]


def image_head(
    version: int, image_id: str, label: str, metadata: dict[str, str], f: Features
) -> bytes:
    """An image's version byte, header length and header (the JSON of its id, label,
    metadata, feature kind, image size and array shape): what precedes its arrays here
    and in a changelog's change (changelog/changes.py)."""
    header = json.dumps(
        {
            "image_id": image_id,
            "label": label,
            "metadata": dict(metadata),
            "backend": f.backend,
            "width": int(f.image_size[0]),
            "height": int(f.image_size[1]),
            "rows": len(f),
            "dimension": f.dimension,
        }
    ).encode()
    return _HEAD.pack(version, len(header)) + header


def read_head(body: bytes, version: int) -> tuple[dict, int, int, int]:
    """An image_head's header, rows, dimension and the offset of the arrays after it;
    ValueError when its version is not ``version``."""
    found, size = _HEAD.unpack_from(body)
    if found != version:
        raise ValueError(f"image record version {found} is not {version}")
    start = _HEAD.size
    h = json.loads(body[start : start + size])
    return h, int(h["rows"]), int(h["dimension"]), start + size


def image_record(image_id: str, label: str, metadata: dict[str, str], f: Features) -> bytes:
    descriptors = np.ascontiguousarray(f.descriptors, _F32)
    locations = np.ascontiguousarray(f.locations, _F32)
    head = image_head(IMAGE_VERSION, image_id, label, metadata, f)
    return b"".join([IMAGE, head, descriptors.tobytes(), locations.tobytes()])


def remove_record(image_ids: list[str]) -> bytes:
    return REMOVE + json.dumps(list(image_ids)).encode()


def decode(payload: bytes) -> Added | Removed:
    kind, body = payload[:1], payload[1:]
    try:
        if kind == IMAGE:
            return _image(body)
        if kind == REMOVE:
            return Removed(list(json.loads(body)))
        if kind == LEGACY_IMAGE:
            return _legacy_image(body)
    except (ValueError, KeyError, struct.error) as exc:
        raise IndexCorrupt(
            f"a write-ahead log record of kind {kind!r} cannot be read: {exc}"
        ) from None
    raise IndexCorrupt(f"unknown write-ahead log record kind {kind!r}")


def _image(body: bytes) -> Added:
    h, rows, dim, offset = read_head(body, IMAGE_VERSION)
    arrays = np.frombuffer(body, _F32, offset=offset)
    if arrays.size != rows * (dim + 2):
        raise ValueError(f"{arrays.size} values for {rows} rows of {dim} + 2")
    descriptors = arrays[: rows * dim].reshape(rows, dim)
    locations = arrays[rows * dim :].reshape(rows, 2)
    features = Features(h["backend"], locations, descriptors, (int(h["width"]), int(h["height"])))
    return Added(h["image_id"], h["label"], dict(h["metadata"]), features)


def _legacy_image(body: bytes) -> Added:
    from google.protobuf.message import DecodeError

    from landmark.v1 import search_pb2
    from landmark.wire import features_from_proto

    try:
        entry = search_pb2.ImageEntry.FromString(body)
    except DecodeError as exc:
        raise ValueError(str(exc)) from None
    features = features_from_proto(entry.features)
    return Added(entry.image_id, entry.label, dict(entry.metadata), features)
