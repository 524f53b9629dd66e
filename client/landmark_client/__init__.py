"""Python SDK of the landmark recognition services.

    from landmark_client import LandmarkClient
    with LandmarkClient("127.0.0.1:50051", "127.0.0.1:50052") as client:
        result = client.recognize("photo.jpg", timeout=10)
        print(result.label, result.best.inliers if result.best else 0)

Every failure is a LandmarkError carrying the gRPC status code.
"""

from landmark.connection import Connection
from landmark.wire import Features

from .client import ExtractorClient, LandmarkClient, SearchClient
from .errors import LandmarkError
from .types import (
    AddResult,
    Comparison,
    ExtractItem,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    Match,
    Recognition,
    SearchResult,
    Timing,
)

__all__ = [
    "AddResult",
    "Comparison",
    "Connection",
    "ExtractItem",
    "ExtractorClient",
    "ExtractorInfo",
    "Features",
    "ImageRecord",
    "ImageToAdd",
    "IndexInfo",
    "LandmarkClient",
    "LandmarkError",
    "Match",
    "Recognition",
    "SearchClient",
    "SearchResult",
    "Timing",
]
