"""Request building and response parsing shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from landmark.v1 import extractor_pb2, search_pb2
from landmark.wire import features_from_proto, features_to_proto, matrix_from_proto

from .errors import LandmarkError
from .images import ImageInput, to_image_bytes
from .types import (
    Comparison,
    ExtractItem,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    Match,
    SearchResult,
    Timing,
)

ON_CONFLICT = {
    "error": search_pb2.ON_CONFLICT_UNSPECIFIED,
    "skip": search_pb2.ON_CONFLICT_SKIP,
    "replace": search_pb2.ON_CONFLICT_REPLACE,
}
# Keep AddImages requests well below the servers' message limit.
ADD_BATCH_BYTES = 32 << 20


def extract_request(
    image: ImageInput,
    max_features: int,
    max_image_size: int,
    request_id: str = "",
    score_threshold: float | None = None,
    image_scales: Sequence[float] | None = None,
) -> extractor_pb2.ExtractRequest:
    options = extractor_pb2.ExtractOptions(
        max_features=max_features,
        max_image_size=max_image_size,
        image_scales=list(image_scales or ()),
    )
    if score_threshold is not None:
        options.score_threshold = score_threshold
    return extractor_pb2.ExtractRequest(
        image=to_image_bytes(image), request_id=request_id, options=options
    )


def extract_item(response: extractor_pb2.ExtractResponse) -> ExtractItem:
    if response.HasField("error"):
        err = LandmarkError.from_code_number(response.error.code, response.error.message)
        return ExtractItem(response.request_id, None, err)
    return ExtractItem(response.request_id, features_from_proto(response.features), None)


def extractor_info(msg: extractor_pb2.ExtractorInfo) -> ExtractorInfo:
    return ExtractorInfo(
        backend=msg.backend,
        dimension=msg.dimension,
        device=msg.device,
        default_max_features=msg.default_max_features,
        max_features_limit=msg.max_features_limit,
        default_max_image_size=msg.default_max_image_size,
        max_image_size_limit=msg.max_image_size_limit,
        max_pixels=msg.max_pixels,
        max_image_bytes=msg.max_image_bytes,
        formats=tuple(msg.formats),
        max_concurrent=msg.max_concurrent or 1,
    )


def add_batches(
    images: Iterable[ImageToAdd], on_conflict: str
) -> Iterator[search_pb2.AddImagesRequest]:
    """AddImages requests of at most ADD_BATCH_BYTES each."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {sorted(ON_CONFLICT)}, got {on_conflict!r}")
    request = search_pb2.AddImagesRequest(on_conflict=ON_CONFLICT[on_conflict])
    size = 0
    for img in images:
        entry = search_pb2.ImageEntry(
            image_id=img.image_id,
            label=img.label,
            metadata=img.metadata,
            features=features_to_proto(img.features),
        )
        entry_size = entry.ByteSize()
        if request.images and size + entry_size > ADD_BATCH_BYTES:
            yield request
            request = search_pb2.AddImagesRequest(on_conflict=ON_CONFLICT[on_conflict])
            size = 0
        request.images.append(entry)
        size += entry_size
    if request.images:
        yield request


def search_request(
    features,
    top_k: int,
    shortlist: int,
    min_inliers: int,
    exclude: Iterable[str],
    include_matches: bool,
    include_rejected: bool = False,
    allow_partial: bool = False,
) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(
        features=features_to_proto(features),
        top_k=top_k,
        options=search_pb2.SearchOptions(
            shortlist=shortlist,
            min_inliers=min_inliers,
            exclude_image_ids=list(exclude),
            include_matches=include_matches,
            include_rejected=include_rejected,
            allow_partial=allow_partial,
        ),
    )


def search_result(msg: search_pb2.SearchResponse) -> SearchResult:
    candidates = []
    for c in msg.candidates:
        has_matches = bool(c.query_locations.shape)
        candidates.append(
            Match(
                image_id=c.image_id,
                label=c.label,
                inliers=c.inliers,
                votes=c.votes,
                putative_matches=c.putative_matches,
                accepted=c.accepted,
                metadata=dict(c.metadata),
                query_locations=(
                    matrix_from_proto(c.query_locations, "query_locations", 2, 2)
                    if has_matches
                    else None
                ),
                database_locations=(
                    matrix_from_proto(c.database_locations, "database_locations", 2, 2)
                    if has_matches
                    else None
                ),
                transform=(
                    matrix_from_proto(c.transform, "transform", 2, 3) if c.transform.shape else None
                ),
            )
        )
    t = msg.timing
    return SearchResult(
        candidates,
        msg.min_inliers,
        Timing(t.neighbours_ms, t.matching_ms, t.verify_ms, t.total_ms),
        partial=msg.partial,
        missing_shards=list(msg.missing_shards),
    )


def compare_request(query, reference, min_inliers: int) -> search_pb2.CompareRequest:
    return search_pb2.CompareRequest(
        query=features_to_proto(query),
        reference=features_to_proto(reference),
        min_inliers=min_inliers,
    )


def comparison(msg: search_pb2.CompareResponse) -> Comparison:
    return Comparison(
        inliers=msg.inliers,
        putative_matches=msg.putative_matches,
        match=msg.match,
        min_inliers=msg.min_inliers,
        query_locations=matrix_from_proto(msg.query_locations, "query_locations", 2, 2),
        reference_locations=matrix_from_proto(msg.reference_locations, "reference_locations", 2, 2),
        transform=matrix_from_proto(msg.transform, "transform", 2, 3)
        if msg.transform.shape
        else None,
    )


def index_info(msg: search_pb2.IndexInfo) -> IndexInfo:
    return IndexInfo(
        images=msg.images,
        descriptors=msg.descriptors,
        dimension=msg.dimension,
        backend=msg.backend,
        bytes_on_disk=msg.bytes_on_disk,
        bytes_per_descriptor=msg.bytes_per_descriptor,
        labels=msg.labels,
        generation=msg.generation,
        segments=msg.segments,
        growing_descriptors=msg.growing_descriptors,
        shards=msg.shards or 1,
        shard_index=msg.shard_index,
        disk_full=msg.disk_full,
        settled=msg.settled,
        bytes_in_memory=msg.bytes_in_memory,
        memory_bytes_per_descriptor=msg.memory_bytes_per_descriptor,
        codebook_version=msg.codebook_version,
    )


def image_record(msg: search_pb2.ImageRecord) -> ImageRecord:
    return ImageRecord(msg.image_id, msg.label, msg.num_features, dict(msg.metadata))
