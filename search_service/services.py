"""The search service's gRPC services by name, and the role each method needs (READ or
WRITE): the same for a search service and for a coordinator in front of shards."""

from __future__ import annotations

from landmark.v1 import search_pb2, shard_pb2
from serving.security import READ, WRITE

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["Search"].full_name
SHARD_SERVICE_NAME = shard_pb2.DESCRIPTOR.services_by_name["Shard"].full_name
ROLES = {
    f"/{SERVICE_NAME}/{method}": role
    for method, role in [
        ("Search", READ),
        ("Compare", READ),
        ("GetIndexInfo", READ),
        ("ListImages", READ),
        ("AddImages", WRITE),
        ("RemoveImages", WRITE),
    ]
}
SHARD_ROLES = {f"/{SHARD_SERVICE_NAME}/{m}": READ for m in ("Neighbours", "Match", "Labels")}
