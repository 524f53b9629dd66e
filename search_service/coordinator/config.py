"""Coordinator settings: CLI flag > environment variable > default."""

from __future__ import annotations

from dataclasses import dataclass

from serving.config import HOST_HELP, MAX_RPCS_HELP, METRICS_PORT_HELP, PORT_HELP
from serving.settings import setting

from ..config import RankingConfig


@dataclass(frozen=True)
class CoordinatorConfig(RankingConfig):
    """The ranking settings (neighbours, shortlist, min_inliers, ...) are the coordinator's:
    it ranks and verifies; the shards only find neighbours and match."""

    host: str = setting("", "LANDMARK_COORDINATOR_HOST", HOST_HELP)
    port: int = setting(50053, "LANDMARK_COORDINATOR_PORT", PORT_HELP)
    metrics_port: int = setting(9153, "LANDMARK_COORDINATOR_METRICS_PORT", METRICS_PORT_HELP)
    max_rpcs: int = setting(32, "LANDMARK_COORDINATOR_MAX_RPCS", MAX_RPCS_HELP)
    shards: tuple[str, ...] = setting(
        (),
        "LANDMARK_SHARDS",
        "shard addresses in shard order, comma-separated (shard i holds the images with "
        "shard_of(id, N) == i); a shard's replicas separated by '|' (A1|A2,B1|B2)",
    )
    shards_dns: str = setting(
        "",
        "LANDMARK_SHARDS_DNS",
        "NAME:PORT resolving to every shard (a headless service); each shard reports its number",
    )
    shard_count: int = setting(0, "LANDMARK_SHARD_COUNT", "number of shards (with --shards-dns)")
    shard_timeout: float = setting(30.0, "LANDMARK_SHARD_TIMEOUT", "seconds a shard gets per call")
    # Calls to the shards carry the caller's bearer token; discovery (and callers without
    # one) use this token, when the shards require one.
    shard_token: str = setting(
        "", "LANDMARK_SHARD_TOKEN", "token for discovery calls to the shards", flag=False
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.shards) == bool(self.shards_dns):
            raise ValueError("give the shards either as a list (--shards) or by DNS (--shards-dns)")
        if self.shards_dns and self.shard_count < 1:
            raise ValueError("--shards-dns needs --shard-count, the number of shards")
