"""Typed results of the SDK (plain dataclasses with numpy arrays)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landmark.wire import Features

from .errors import LandmarkError
from .images import ImageInput


@dataclass(frozen=True)
class Match:
    """A database image that matched, with its geometric evidence."""

    image_id: str
    label: str
    # Verified correspondences, counted at distinct locations: two keypoints at the same
    # pixel (SIFT finds some twice, at two orientations) count once, so inliers can be a
    # little below len(query_locations).
    inliers: int
    votes: int
    putative_matches: int
    metadata: dict[str, str] = field(default_factory=dict)
    # inliers reached the service's min_inliers: this candidate counts as a match
    accepted: bool = True
    # [M, 2] inlier (x, y) in the query and in the database image (with include_matches).
    query_locations: np.ndarray | None = None
    database_locations: np.ndarray | None = None
    # [2, 3] affine transform from query to database pixels.
    transform: np.ndarray | None = None


@dataclass(frozen=True)
class Comparison:
    """Two photos matched with each other and verified, as a search verifies a candidate."""

    inliers: int  # counted at distinct locations, as Match.inliers
    putative_matches: int
    match: bool  # inliers >= min_inliers
    min_inliers: int  # the service's threshold for the feature kind (or the one asked for)
    # [M, 2] inlier (x, y) in the query photo and in the reference photo.
    query_locations: np.ndarray
    reference_locations: np.ndarray
    # [2, 3] affine transform from query to reference pixels (when verified).
    transform: np.ndarray | None = None


@dataclass(frozen=True)
class Timing:
    """Where a search's time went, in milliseconds, measured inside the service."""

    neighbours_ms: float  # nearest database descriptors (through a coordinator: the shards)
    matching_ms: float  # votes, shortlist and exact mutual matching
    verify_ms: float  # geometric verification of the shortlist
    total_ms: float


@dataclass(frozen=True)
class SearchResult:
    """Verified candidates, best first; ``match`` is False when none was accepted.

    With ``include_rejected`` the candidates below min_inliers follow (accepted False).
    Through a coordinator with ``allow_partial``, ``partial`` says some shards did not
    answer and ``missing_shards`` names them."""

    candidates: list[Match]
    min_inliers: int
    timing: Timing
    partial: bool = False
    missing_shards: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> list[Match]:
        return [m for m in self.candidates if m.accepted]

    @property
    def match(self) -> bool:
        return bool(self.candidates) and self.candidates[0].accepted

    @property
    def best(self) -> Match | None:
        """The best accepted candidate, or None for "no match"."""
        return self.candidates[0] if self.match else None

    @property
    def label(self) -> str | None:
        """The best guess, or None for "no match"."""
        return self.candidates[0].label if self.match else None


@dataclass(frozen=True)
class Recognition:
    """What ``recognize`` found: the query's features and the search result."""

    features: Features
    result: SearchResult

    @property
    def label(self) -> str | None:
        return self.result.label

    @property
    def best(self) -> Match | None:
        return self.result.best


@dataclass(frozen=True)
class ExtractItem:
    """One result of a bulk extraction: features, or the error of that image."""

    request_id: str
    features: Features | None
    error: LandmarkError | None

    def result(self) -> Features:
        """The features, or raise the error of this image."""
        if self.features is None:
            raise self.error or LandmarkError.from_code_number(2, "no features")
        return self.features


@dataclass(frozen=True)
class ImageToAdd:
    image_id: str
    label: str
    features: Features
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddResult:
    added: int
    skipped: int
    replaced: int


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    label: str
    num_features: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexInfo:
    images: int
    descriptors: int
    dimension: int
    backend: str
    bytes_on_disk: int
    bytes_per_descriptor: float  # on disk
    labels: int
    generation: int
    segments: int = 0
    growing_descriptors: int = 0
    shards: int = 1  # through a coordinator: the shards summed
    shard_index: int = -1  # a shard's own number; -1 when not sharded
    disk_full: bool = False  # adds are refused until the index disk has room again
    # nothing left to do in the background (buffer sealed, no merge running, due or
    # waiting): until the next write, every search answers as it does now
    settled: bool = False
    # what searches keep in memory (the rows of segments with words stay on disk)
    bytes_in_memory: int = 0
    memory_bytes_per_descriptor: float = 0.0
    codebook_version: str = ""  # the visual words' version; "" before the index has any


@dataclass(frozen=True)
class ExtractorInfo:
    backend: str
    dimension: int
    device: str
    default_max_features: int
    max_features_limit: int
    default_max_image_size: int
    max_image_size_limit: int
    max_pixels: int
    max_image_bytes: int
    formats: tuple[str, ...]
    max_concurrent: int = 1  # extractions the replica runs at once


@dataclass(frozen=True)
class Photo:
    """One photo to index: its id, label, the image (path, bytes, array) and metadata."""

    image_id: str
    label: str
    image: ImageInput
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class IngestReport:
    found: int = 0  # photos offered, distractors and already indexed ones included
    already_indexed: int = 0
    added: int = 0
    distractors: int = 0  # photos under the distractor label: never indexed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image id, why)
    seconds: float = 0.0
    described: dict[str, int] = field(default_factory=dict)  # photos per extractor replica
    retried: int = 0  # extractions sent again after a replica failed
    add_retries: int = 0  # adds sent again (the search node asked to wait, or was away)

    @property
    def photos_per_second(self) -> float:
        done = self.added + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "already_indexed": self.already_indexed,
            "added": self.added,
            "distractors": self.distractors,
            "failed": [{"image_id": i, "reason": why} for i, why in self.failed],
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
            "described": dict(self.described),
            "retried": self.retried,
            "add_retries": self.add_retries,
        }
