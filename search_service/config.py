"""Search service and coordinator settings: CLI flag > environment variable > default.

Each default is declared once, on the core's own settings (SearchParams, StoreSettings,
RequestLimits); the fields here name them, add an environment variable and a help text,
and the command-line flags are derived from these fields (serving.launch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from serving.config import HOST_HELP, MAX_RPCS_HELP, METRICS_PORT_HELP, PORT_HELP, ServingConfig
from serving.settings import check_positive, setting

from .index.store_settings import StoreSettings
from .limits import RequestLimits
from .search.search_params import LOOKUP_FEATURES, MIN_INLIERS, THREADS, SearchParams

_SEARCH = SearchParams()
_STORE = StoreSettings()
_LIMITS = RequestLimits()
_BY_KIND = ", ".join(f"{kind} {n}" for kind, n in MIN_INLIERS.items())
_LOOKUP_BY_KIND = ", ".join(f"{kind} {n}" for kind, n in LOOKUP_FEATURES.items())


@dataclass(frozen=True)
class RankingConfig(ServingConfig):
    """What a search service and a coordinator share: how searches are ranked and bounded."""

    threads: int = setting(
        THREADS, "LANDMARK_SEARCH_THREADS", "threads looking up, matching and verifying a search"
    )
    neighbours: int = setting(
        _SEARCH.k, "LANDMARK_NEIGHBOURS", "nearest database descriptors per query descriptor"
    )
    shortlist: int = setting(
        _SEARCH.shortlist, "LANDMARK_SHORTLIST", "best-voted images verified per search"
    )
    min_inliers: int = setting(
        _SEARCH.min_inliers,
        "LANDMARK_MIN_INLIERS",
        f"inliers a match needs (0 = by feature kind: {_BY_KIND})",
    )
    ratio: float = setting(
        _SEARCH.ratio, "LANDMARK_RATIO", "Lowe's ratio test of exact matching (0-1]"
    )
    max_top_k: int = setting(
        _LIMITS.max_top_k, "LANDMARK_MAX_TOP_K", "largest top_k and shortlist a search may ask"
    )
    max_query_features: int = setting(
        _LIMITS.max_query_features, "LANDMARK_MAX_QUERY_FEATURES", "most features in one search"
    )
    max_message_mb: int = setting(256, "LANDMARK_MAX_MESSAGE_MB", "largest request in MiB")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            self, "max_rpcs", "threads", "neighbours", "shortlist", "max_top_k", "max_message_mb"
        )
        check_positive(self, "max_query_features")
        if self.min_inliers < 0:
            raise ValueError(f"min_inliers must not be negative, got {self.min_inliers}")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")

    def search_params(self) -> SearchParams:
        return SearchParams(
            k=self.neighbours,
            shortlist=self.shortlist,
            min_inliers=self.min_inliers,
            ratio=self.ratio,
        )


@dataclass(frozen=True)
class SearchConfig(RankingConfig):
    host: str = setting("", "LANDMARK_SEARCH_HOST", HOST_HELP)
    port: int = setting(50052, "LANDMARK_SEARCH_PORT", PORT_HELP)
    metrics_port: int = setting(9152, "LANDMARK_SEARCH_METRICS_PORT", METRICS_PORT_HELP)
    max_rpcs: int = setting(32, "LANDMARK_SEARCH_MAX_RPCS", MAX_RPCS_HELP)
    index_dir: str = setting("landmark-index", "LANDMARK_INDEX_DIR", "the index folder")
    shard_index: int = setting(
        -1, "LANDMARK_SHARD_INDEX", "this shard's number (0-based) when sharded; -1 = not"
    )
    shard_count: int = setting(
        1, "LANDMARK_SHARD_COUNT", "shards the changelog's images are spread over (by id)"
    )
    changelog: str = setting(
        "",
        "LANDMARK_CHANGELOG",
        "NATS servers of the changelog, nats://HOST:PORT[,...]: writes go to its JetStream "
        "stream, and this replica applies its shard's changes from it (empty = this "
        "service's own write-ahead log only)",
    )
    changelog_replicas: int = setting(
        3, "LANDMARK_CHANGELOG_REPLICAS", "NATS servers holding each change (the stream's R)"
    )
    n_trees: int = setting(_STORE.n_trees, "LANDMARK_ANNOY_TREES", "Annoy trees per segment")
    projection_dim: int = setting(
        _STORE.projection_dim,
        "LANDMARK_PROJECTION_DIM",
        "dimension of the PCA projection Annoy indexes (new segments)",
    )
    search_k: int = setting(
        _SEARCH.search_k,
        "LANDMARK_ANNOY_SEARCH_K",
        "Annoy nodes inspected per lookup, shared among segments by size (0 = neighbours x 48)",
    )
    lookup_features: int = setting(
        _SEARCH.lookup_features,
        "LANDMARK_LOOKUP_FEATURES",
        f"query descriptors that look up neighbours, the strongest first (0 = by feature "
        f"kind: {_LOOKUP_BY_KIND}, others all); matching and verification use all",
    )
    seal_descriptors: int = setting(
        _STORE.seal_descriptors,
        "LANDMARK_SEAL_DESCRIPTORS",
        "the growing buffer is sealed into an Annoy segment at this many descriptors",
    )
    seal_seconds: float = setting(
        _STORE.seal_seconds, "LANDMARK_SEAL_SECONDS", "... or when its oldest image is this old"
    )
    max_growing_descriptors: int = setting(
        _STORE.max_growing_descriptors,
        "LANDMARK_MAX_GROWING_DESCRIPTORS",
        "small adds are refused (RESOURCE_EXHAUSTED, retry hint) while the buffer holds this many",
    )
    max_segments: int = setting(
        _STORE.max_segments, "LANDMARK_MAX_SEGMENTS", "segments are merged beyond this many"
    )
    max_segment_rows: int = setting(
        _STORE.max_segment_rows,
        "LANDMARK_MAX_SEGMENT_ROWS",
        "no segment is built larger (descriptors): bounds a build's memory",
    )
    idle_merge_seconds: float = setting(
        _STORE.idle_merge_seconds,
        "LANDMARK_IDLE_MERGE_SECONDS",
        "compact after this long without writes (0 = never when idle)",
    )
    max_add_features: int = setting(
        _LIMITS.max_add_features, "LANDMARK_MAX_ADD_FEATURES", "most descriptors in one add"
    )
    codebook: str = setting(
        _STORE.codebook,
        "LANDMARK_CODEBOOK",
        "a codebook folder (python -m search_service.index.vocabulary) the index takes as its "
        "words from its first segment; every shard of a coordinator needs the same one "
        "(empty = fitted on the index's own descriptors; a shard without one has no words "
        "and is searched by its rows)",
    )
    codebook_words: int = setting(
        _STORE.codebook_words, "LANDMARK_CODEBOOK_WORDS", "visual words fitted on the index"
    )
    codebook_min_rows: int = setting(
        _STORE.codebook_min_rows,
        "LANDMARK_CODEBOOK_MIN_ROWS",
        "words are fitted once the index holds this many descriptors",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            self,
            "max_add_features",
            "n_trees",
            "projection_dim",
            "seal_descriptors",
            "max_growing_descriptors",
            "max_segments",
            "max_segment_rows",
            "codebook_words",
            "codebook_min_rows",
            "shard_count",
            "changelog_replicas",
        )
        if self.shard_index >= self.shard_count and self.changelog:
            raise ValueError(
                f"shard_index {self.shard_index} is not below shard_count {self.shard_count}"
            )
        if self.idle_merge_seconds < 0:
            raise ValueError("idle_merge_seconds must not be negative (0 = off)")
        if self.search_k < 0:
            raise ValueError("search_k must not be negative (0 = automatic)")
        if self.lookup_features < 0:
            raise ValueError("lookup_features must not be negative (0 = by feature kind)")

    def search_params(self) -> SearchParams:
        return replace(
            super().search_params(), search_k=self.search_k, lookup_features=self.lookup_features
        )

    def store_settings(self) -> StoreSettings:
        return StoreSettings(
            n_trees=self.n_trees,
            projection_dim=self.projection_dim,
            seal_descriptors=self.seal_descriptors,
            seal_seconds=self.seal_seconds,
            max_growing_descriptors=self.max_growing_descriptors,
            max_segments=self.max_segments,
            max_segment_rows=self.max_segment_rows,
            idle_merge_seconds=self.idle_merge_seconds,
            codebook=self.codebook,
            codebook_words=self.codebook_words,
            codebook_min_rows=self.codebook_min_rows,
            fit_codebook=self.shard_index < 0,
        )

    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_top_k=self.max_top_k,
            max_query_features=self.max_query_features,
            max_add_features=self.max_add_features,
        )
