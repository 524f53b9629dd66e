"""Where changes live in the stream: one subject per shard and image, so that the stream,
keeping only the latest message of each subject, holds exactly the live index."""

from __future__ import annotations

import base64

STREAM = "LANDMARK_CHANGES"
PREFIX = "landmark.changes"


def token(image_id: str) -> str:
    """An image id as one subject token: NATS tokens may not hold '.', '*', '>' or spaces,
    image ids may (base64url of its UTF-8, unpadded: '-', '_' and alphanumerics only)."""
    return base64.urlsafe_b64encode(image_id.encode("utf-8")).rstrip(b"=").decode("ascii")


def subject(shard: int, image_id: str) -> str:
    return f"{PREFIX}.{shard}.{token(image_id)}"


def of_shard(shard: int) -> str:
    """Every subject of one shard (a consumer's filter)."""
    return f"{PREFIX}.{shard}.>"


def every_shard() -> str:
    return f"{PREFIX}.>"
