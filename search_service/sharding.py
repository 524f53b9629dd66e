"""Which shard holds an image, where the shards are, and the wire form of a search's first
stage (k-NN hits and images chosen by words) and of exact matches."""

from __future__ import annotations

import hashlib
import socket

import numpy as np

from landmark.v1 import shard_pb2
from landmark.wire import matrix_from_proto, matrix_to_proto

from .index.images import ImageMeta
from .search.hits import Hits, WordChoice


def shard_of(image_id: str, shards: int) -> int:
    """Stable shard number of an image id: the same on every machine and Python run."""
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def resolve(name_and_port: str) -> list[str]:
    """Every address a DNS name (e.g. a Kubernetes headless service) resolves to."""
    host, _, port = name_and_port.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"shards_dns must be NAME:PORT, got {name_and_port!r}")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    out = []
    for family, *_, sockaddr in infos:
        ip = sockaddr[0]
        out.append(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return sorted(set(out))


def neighbours_to_proto(
    images: list[ImageMeta], hits: Hits, words: WordChoice
) -> shard_pb2.NeighboursResponse:
    ids = np.stack([hits.query, hits.image, hits.row], axis=1).astype("<i8")
    msg = shard_pb2.NeighboursResponse(
        hit_ids=ids.tobytes(),
        hit_distances=np.asarray(hits.dist, "<f4").tobytes(),
        word_images=np.asarray(words.image, "<i8").tobytes(),
        word_shared=np.asarray(words.shared, "<i8").tobytes(),
        word_scores=np.asarray(words.score, "<f8").tobytes(),
        codebook_version=words.codebook,
    )
    for m in images:
        msg.images.add(
            image_id=m.image_id,
            label=m.label,
            metadata=m.metadata,
            width=m.width,
            height=m.height,
            num_features=m.count,
        )
    return msg


def neighbours_from_proto(
    msg: shard_pb2.NeighboursResponse,
) -> tuple[list[ImageMeta], Hits, WordChoice]:
    if len(msg.hit_ids) % 24 or len(msg.hit_distances) % 4:
        raise ValueError("a shard answered hit_ids or hit_distances of a broken length")
    ids = np.frombuffer(msg.hit_ids, "<i8").reshape(-1, 3)
    dist = np.frombuffer(msg.hit_distances, "<f4")
    if ids.shape[0] != dist.shape[0]:
        raise ValueError("a shard answered hit_ids and hit_distances of different lengths")
    if not np.isfinite(dist).all():
        raise ValueError("a shard answered distances that are not finite")
    images = [
        ImageMeta(m.image_id, m.label, 0, m.num_features, m.width, m.height, dict(m.metadata))
        for m in msg.images
    ]
    if ids.size and (ids[:, 1].min() < 0 or ids[:, 1].max() >= len(images)):
        raise ValueError("a shard answered hits that point past its image list")
    hits = Hits(
        ids[:, 0].astype(np.int32),
        ids[:, 2].astype(np.int64),
        ids[:, 1].astype(np.int32),
        dist.astype(np.float32),
    )
    return images, hits, _words_from_proto(msg, len(images))


def _words_from_proto(msg: shard_pb2.NeighboursResponse, images: int) -> WordChoice:
    sizes = {len(msg.word_images), len(msg.word_shared), len(msg.word_scores)}
    if len(sizes) != 1 or sizes.pop() % 8:
        raise ValueError("a shard answered word_images, word_shared and word_scores that disagree")
    chosen = np.frombuffer(msg.word_images, "<i8").astype(np.int64)
    score = np.frombuffer(msg.word_scores, "<f8").astype(np.float64)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= images):
        raise ValueError("a shard answered word images that point past its image list")
    if not np.isfinite(score).all():
        raise ValueError("a shard answered word scores that are not finite")
    shared = np.frombuffer(msg.word_shared, "<i8").astype(np.int64)
    return WordChoice(chosen, score, shared, msg.codebook_version)


def match_to_proto(
    matched: list[tuple[ImageMeta, np.ndarray, np.ndarray]],
) -> shard_pb2.MatchResponse:
    msg = shard_pb2.MatchResponse()
    for meta, query, locations in matched:
        msg.images.add(
            image_id=meta.image_id,
            query_indices=np.asarray(query, "<i4").tobytes(),
            locations=matrix_to_proto(np.asarray(locations, np.float32).reshape(-1, 2)),
        )
    return msg


def match_from_proto(
    msg: shard_pb2.MatchResponse, n_queries: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """image id → (query indices, database locations), checked against a query of
    ``n_queries`` descriptors."""
    out = {}
    for m in msg.images:
        query = np.frombuffer(m.query_indices, "<i4").astype(np.int64)
        locations = matrix_from_proto(m.locations, "locations", 2, 2)
        if locations.shape[0] != query.size:
            raise ValueError("a shard answered query_indices and locations of different lengths")
        if query.size and (query.min() < 0 or query.max() >= n_queries):
            raise ValueError("a shard answered query indices past the query")
        out[m.image_id] = (query, locations.astype(np.float32))
    return out
