"""Coordinator mode of the search service: one Search endpoint over N search shards.

Images live on shard ``shard_of(image_id, N)``. A search asks every shard for the k nearest
descriptors of each query descriptor (Neighbours), keeps the global k nearest and votes
for a shortlist, asks the shards holding the shortlisted images for exact matches
(Match), and verifies them here with the code one index uses, so N shards rank like one
index holding the same images. Adds and removes go to the owning shard. It speaks the same
``landmark.v1.Search`` contract, so callers in any language use it like one search service.
"""

from .config import CoordinatorConfig
from .server import create_server
from .servicer import CoordinatorServicer

__all__ = ["CoordinatorConfig", "CoordinatorServicer", "create_server"]
