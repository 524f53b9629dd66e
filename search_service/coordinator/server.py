"""A coordinator on the network: its servicer served, SERVING at once (it loads no index)."""

from __future__ import annotations

import logging

from landmark.v1 import search_pb2_grpc
from serving import runtime
from serving.metrics import Metrics

from ..services import ROLES, SERVICE_NAME
from .config import CoordinatorConfig
from .servicer import CoordinatorServicer
from .shards import Shards

log = logging.getLogger(__name__)


def create_server(
    config: CoordinatorConfig, shards: Shards | None = None
) -> tuple[runtime.Running, int, CoordinatorServicer]:
    servicer = CoordinatorServicer(config, shards)
    services = {SERVICE_NAME: lambda s: search_pb2_grpc.add_SearchServicer_to_server(servicer, s)}
    metrics = Metrics()
    metrics.gauges(
        lambda: {"verify_failures": servicer.verify_failures.value},
        "landmark_coordinator",
        {"verify_failures": "candidates skipped because their verification raised (see the log)"},
    )
    running = runtime.start(
        config,
        services,
        ROLES,
        metrics,
        max_receive_bytes=config.max_message_mb << 20,
        thread_prefix="coordinator",
    )
    running.set_serving(True)  # whatever it needs is loaded: it holds no index
    log.info(
        "coordinating %d shards: %s",
        servicer.shards.count,
        ", ".join(config.shards) or config.shards_dns,
    )
    return running, running.port, servicer
