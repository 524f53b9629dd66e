"""A change as the changelog carries it: one image added, with its features as a sealed
segment keeps them (int8 descriptors, uint16 locations: about 130 KB for 1,000 ALIKED
features, within NATS's 1 MB message), or one image removed (a tombstone: the latest
message of the image's subject says it is gone)."""

from __future__ import annotations

import json
import struct

import numpy as np

from landmark.wire import Features

from ..index import compact
from ..index.records import Added, Removed, image_head, read_head

ADD, REMOVE = b"a", b"r"
VERSION = 1


class BadChange(ValueError):
    """A message that is not a change this code writes (another version, or damaged)."""


def added(image_id: str, label: str, metadata: dict[str, str], f: Features) -> bytes:
    """The change: the kind byte, the image's head as the write-ahead log writes it
    (records.image_head), then its int8 descriptors and uint16 locations."""
    return b"".join(
        [
            ADD,
            image_head(VERSION, image_id, label, metadata, f),
            compact.quantize_descriptors(f.descriptors).tobytes(),
            compact.quantize_locations(f.locations, f.image_size).astype("<u2").tobytes(),
        ]
    )


def removed(image_id: str) -> bytes:
    return REMOVE + json.dumps(image_id).encode()


def decode(payload: bytes) -> Added | Removed:
    kind, body = payload[:1], payload[1:]
    try:
        if kind == REMOVE:
            return Removed([json.loads(body)])
        if kind == ADD:
            return _added(body)
    except (ValueError, KeyError, struct.error) as exc:
        raise BadChange(f"a change of kind {kind!r} cannot be read: {exc}") from None
    raise BadChange(f"unknown change kind {kind!r}")


def _added(body: bytes) -> Added:
    h, rows, dim, offset = read_head(body, VERSION)
    data = body[offset:]
    if len(data) != rows * (dim + 4):
        raise ValueError(f"{len(data)} bytes for {rows} rows of {dim} + 4")
    q = np.frombuffer(data, np.int8, rows * dim).reshape(rows, dim)
    xy = np.frombuffer(data, "<u2", rows * 2, offset=rows * dim).reshape(rows, 2)
    size_wh = (int(h["width"]), int(h["height"]))
    features = Features(
        h["backend"],
        compact.dequantize_locations(xy, size_wh),
        compact.dequantize_descriptors(q),
        size_wh,
    )
    return Added(h["image_id"], h["label"], dict(h["metadata"]), features)
