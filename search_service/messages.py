"""Search results and comparisons as landmark.v1 messages, and the comparison request's
features decoded (shared by the search service and the coordinator)."""

from __future__ import annotations

from landmark.v1 import search_pb2
from landmark.wire import Features, matrix_to_proto

from .errors import InvalidRequest
from .search.ranking import SearchResult
from .search.searching import Comparison
from .validation import request_features


def search_response(result: SearchResult) -> search_pb2.SearchResponse:
    response = search_pb2.SearchResponse(
        timing=search_pb2.Timing(**result.timing.__dict__), min_inliers=result.min_inliers
    )
    for c in result.candidates:
        msg = response.candidates.add(
            image_id=c.image.image_id,
            label=c.image.label,
            inliers=c.inliers,
            votes=c.votes,
            putative_matches=c.putative,
            accepted=c.inliers >= result.min_inliers,
            metadata=c.image.metadata,
        )
        if c.transform is not None:
            msg.transform.CopyFrom(matrix_to_proto(c.transform))
        if c.query_locations is not None:
            msg.query_locations.CopyFrom(matrix_to_proto(c.query_locations))
            msg.database_locations.CopyFrom(matrix_to_proto(c.database_locations))
    if result.best is not None:
        response.match = True
        response.best_label = result.best.image.label
        response.best_image_id = result.best.image.image_id
    return response


def compare_request(request: search_pb2.CompareRequest) -> tuple[Features, Features]:
    for name in ("query", "reference"):
        if not request.HasField(name):
            raise InvalidRequest(f"{name} features are missing: extract them first")
    if request.min_inliers < 0:
        raise InvalidRequest("min_inliers must not be negative (0 = default)")
    return request_features(request.query, "query"), request_features(
        request.reference, "reference"
    )


def compare_response(result: Comparison) -> search_pb2.CompareResponse:
    response = search_pb2.CompareResponse(
        inliers=result.inliers,
        putative_matches=result.putative,
        match=result.match,
        min_inliers=result.min_inliers,
        query_locations=matrix_to_proto(result.query_locations),
        reference_locations=matrix_to_proto(result.reference_locations),
    )
    if result.transform is not None:
        response.transform.CopyFrom(matrix_to_proto(result.transform))
    return response
