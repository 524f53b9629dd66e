"""Search service settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import SearchParams
from .store import StoreSettings
from .verify import VerifyParams


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class SearchConfig:
    host: str = field(default="127.0.0.1", metadata=_env("LANDMARK_SEARCH_HOST"))
    port: int = field(default=50052, metadata=_env("LANDMARK_SEARCH_PORT"))
    index_dir: str = field(default="landmark-index", metadata=_env("LANDMARK_INDEX_DIR"))
    workers: int = field(default=8, metadata=_env("LANDMARK_SEARCH_WORKERS"))
    threads: int = field(default=2, metadata=_env("LANDMARK_SEARCH_THREADS"))
    n_trees: int = field(default=16, metadata=_env("LANDMARK_ANNOY_TREES"))
    search_k: int = field(default=0, metadata=_env("LANDMARK_ANNOY_SEARCH_K"))
    neighbours: int = field(default=10, metadata=_env("LANDMARK_NEIGHBOURS"))
    shortlist: int = field(default=30, metadata=_env("LANDMARK_SHORTLIST"))
    min_inliers: int = field(default=10, metadata=_env("LANDMARK_MIN_INLIERS"))
    ratio: float = field(default=0.9, metadata=_env("LANDMARK_RATIO"))
    # the growing buffer is sealed into an Annoy segment at this size or age
    seal_descriptors: int = field(default=20_000, metadata=_env("LANDMARK_SEAL_DESCRIPTORS"))
    seal_seconds: float = field(default=2.0, metadata=_env("LANDMARK_SEAL_SECONDS"))
    # segments are merged into one when there are more than this
    max_segments: int = field(default=8, metadata=_env("LANDMARK_MAX_SEGMENTS"))
    max_message_mb: int = field(default=256, metadata=_env("LANDMARK_MAX_MESSAGE_MB"))
    grace_seconds: float = field(default=5.0, metadata=_env("LANDMARK_GRACE_SECONDS"))

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0-65535")
        for name in (
            "workers",
            "threads",
            "n_trees",
            "neighbours",
            "shortlist",
            "min_inliers",
            "max_message_mb",
            "seal_descriptors",
            "max_segments",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.search_k < 0:
            raise ValueError("search_k must not be negative (0 = automatic)")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def store_settings(self) -> StoreSettings:
        return StoreSettings(
            n_trees=self.n_trees,
            seal_descriptors=self.seal_descriptors,
            seal_seconds=self.seal_seconds,
            max_segments=self.max_segments,
        )

    def search_params(self) -> SearchParams:
        return SearchParams(
            k=self.neighbours,
            search_k=self.search_k,
            shortlist=self.shortlist,
            min_inliers=self.min_inliers,
            ratio=self.ratio,
            verify=VerifyParams(),
        )
