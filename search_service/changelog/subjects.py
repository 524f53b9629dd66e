"""Where changes live in the stream: one subject per image, under its shard and the number
of shards it is spread over (``landmark.changes.<shards>.<shard>.<image>``), so that the
stream, keeping only the latest message of each subject, holds exactly the live index,
and the images of a layout of N shards and of one of M (while re-sharding) never meet."""

from __future__ import annotations

import base64

STREAM = "LANDMARK_CHANGES"
PREFIX = "landmark.changes"


def token(image_id: str) -> str:
    """An image id as one subject token: NATS tokens may not hold '.', '*', '>' or spaces,
    image ids may (base64url of its UTF-8, unpadded: '-', '_' and alphanumerics only)."""
    return base64.urlsafe_b64encode(image_id.encode("utf-8")).rstrip(b"=").decode("ascii")


def subject(shard: int, shards: int, image_id: str) -> str:
    return f"{of_layout(shards)[:-1]}{shard}.{token(image_id)}"


def of_shard(shard: int, shards: int) -> str:
    """Every subject of one shard of ``shards`` (a consumer's filter)."""
    return f"{of_layout(shards)[:-1]}{shard}.>"


def of_layout(shards: int) -> str:
    """Every subject of the layout of ``shards`` shards."""
    return f"{PREFIX}.{shards}.>"


def image_of(name: str) -> str:
    """The image id a subject is about."""
    last = name.rsplit(".", 1)[1]
    return base64.urlsafe_b64decode(last + "=" * (-len(last) % 4)).decode("utf-8")


def every_shard() -> str:
    return f"{PREFIX}.>"
