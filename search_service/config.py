"""Search service settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass

from serving.config import ServingConfig
from serving.settings import check_positive, setting

from .engine import RequestLimits
from .ranking import SearchParams
from .store import StoreSettings


@dataclass(frozen=True)
class SearchConfig(ServingConfig):
    host: str = setting("", "LANDMARK_SEARCH_HOST")
    port: int = setting(50052, "LANDMARK_SEARCH_PORT")
    metrics_port: int = setting(9152, "LANDMARK_SEARCH_METRICS_PORT")
    max_rpcs: int = setting(32, "LANDMARK_SEARCH_MAX_RPCS")
    index_dir: str = setting("landmark-index", "LANDMARK_INDEX_DIR")
    # This process's shard number (0-based) when it is one shard of several; -1 = not sharded.
    shard_index: int = setting(-1, "LANDMARK_SHARD_INDEX")
    threads: int = setting(2, "LANDMARK_SEARCH_THREADS")
    n_trees: int = setting(16, "LANDMARK_ANNOY_TREES")
    search_k: int = setting(0, "LANDMARK_ANNOY_SEARCH_K")
    neighbours: int = setting(5, "LANDMARK_NEIGHBOURS")
    shortlist: int = setting(20, "LANDMARK_SHORTLIST")
    min_inliers: int = setting(0, "LANDMARK_MIN_INLIERS")  # 0 = by feature kind
    ratio: float = setting(0.85, "LANDMARK_RATIO")
    # the growing buffer is sealed into an Annoy segment at this size or age
    seal_descriptors: int = setting(20_000, "LANDMARK_SEAL_DESCRIPTORS")
    seal_seconds: float = setting(2.0, "LANDMARK_SEAL_SECONDS")
    # segments are merged into one when there are more than this
    max_segments: int = setting(8, "LANDMARK_MAX_SEGMENTS")
    # ... and when no write came for this long (0 = never compact when idle)
    idle_merge_seconds: float = setting(5.0, "LANDMARK_IDLE_MERGE_SECONDS")
    # request limits
    max_message_mb: int = setting(256, "LANDMARK_MAX_MESSAGE_MB")
    max_top_k: int = setting(1000, "LANDMARK_MAX_TOP_K")
    max_query_features: int = setting(10_000, "LANDMARK_MAX_QUERY_FEATURES")
    max_add_features: int = setting(1_000_000, "LANDMARK_MAX_ADD_FEATURES")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            self,
            "max_rpcs",
            "max_top_k",
            "max_query_features",
            "max_add_features",
            "threads",
            "n_trees",
            "neighbours",
            "shortlist",
            "max_message_mb",
            "seal_descriptors",
            "max_segments",
        )
        if self.min_inliers < 0:
            raise ValueError(f"min_inliers must not be negative, got {self.min_inliers}")
        if self.idle_merge_seconds < 0:
            raise ValueError("idle_merge_seconds must not be negative (0 = off)")
        if self.search_k < 0:
            raise ValueError("search_k must not be negative (0 = automatic)")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")

    def store_settings(self) -> StoreSettings:
        return StoreSettings(
            n_trees=self.n_trees,
            seal_descriptors=self.seal_descriptors,
            seal_seconds=self.seal_seconds,
            max_segments=self.max_segments,
            idle_merge_seconds=self.idle_merge_seconds,
        )

    def search_params(self) -> SearchParams:
        return SearchParams(
            k=self.neighbours,
            search_k=self.search_k,
            shortlist=self.shortlist,
            min_inliers=self.min_inliers,
            ratio=self.ratio,
        )

    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_top_k=self.max_top_k,
            max_query_features=self.max_query_features,
            max_add_features=self.max_add_features,
        )
