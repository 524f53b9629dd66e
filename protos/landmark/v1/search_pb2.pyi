from landmark.v1 import features_pb2 as _features_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OnConflict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_CONFLICT_UNSPECIFIED: _ClassVar[OnConflict]
    ON_CONFLICT_SKIP: _ClassVar[OnConflict]
    ON_CONFLICT_REPLACE: _ClassVar[OnConflict]
ON_CONFLICT_UNSPECIFIED: OnConflict
ON_CONFLICT_SKIP: OnConflict
ON_CONFLICT_REPLACE: OnConflict

class ImageEntry(_message.Message):
    __slots__ = ("image_id", "label", "metadata", "features")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    label: str
    metadata: _containers.ScalarMap[str, str]
    features: _features_pb2.Features
    def __init__(self, image_id: _Optional[str] = ..., label: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., features: _Optional[_Union[_features_pb2.Features, _Mapping]] = ...) -> None: ...

class AddImagesRequest(_message.Message):
    __slots__ = ("images", "on_conflict")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ON_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImageEntry]
    on_conflict: OnConflict
    def __init__(self, images: _Optional[_Iterable[_Union[ImageEntry, _Mapping]]] = ..., on_conflict: _Optional[_Union[OnConflict, str]] = ...) -> None: ...

class AddImagesResponse(_message.Message):
    __slots__ = ("added", "skipped", "replaced", "index")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    added: int
    skipped: int
    replaced: int
    index: IndexInfo
    def __init__(self, added: _Optional[int] = ..., skipped: _Optional[int] = ..., replaced: _Optional[int] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...

class RemoveImagesRequest(_message.Message):
    __slots__ = ("image_ids",)
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveImagesResponse(_message.Message):
    __slots__ = ("removed", "not_found", "index")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    removed: int
    not_found: _containers.RepeatedScalarFieldContainer[str]
    index: IndexInfo
    def __init__(self, removed: _Optional[int] = ..., not_found: _Optional[_Iterable[str]] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("shortlist", "min_inliers", "exclude_image_ids", "include_matches", "include_rejected", "allow_partial")
    SHORTLIST_FIELD_NUMBER: _ClassVar[int]
    MIN_INLIERS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REJECTED_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    shortlist: int
    min_inliers: int
    exclude_image_ids: _containers.RepeatedScalarFieldContainer[str]
    include_matches: bool
    include_rejected: bool
    allow_partial: bool
    def __init__(self, shortlist: _Optional[int] = ..., min_inliers: _Optional[int] = ..., exclude_image_ids: _Optional[_Iterable[str]] = ..., include_matches: _Optional[bool] = ..., include_rejected: _Optional[bool] = ..., allow_partial: _Optional[bool] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("features", "top_k", "options")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    features: _features_pb2.Features
    top_k: int
    options: SearchOptions
    def __init__(self, features: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., top_k: _Optional[int] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("image_id", "label", "inliers", "votes", "putative_matches", "metadata", "query_locations", "database_locations", "transform", "accepted")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INLIERS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    PUTATIVE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    QUERY_LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    label: str
    inliers: int
    votes: int
    putative_matches: int
    metadata: _containers.ScalarMap[str, str]
    query_locations: _features_pb2.Float32Matrix
    database_locations: _features_pb2.Float32Matrix
    transform: _features_pb2.Float32Matrix
    accepted: bool
    def __init__(self, image_id: _Optional[str] = ..., label: _Optional[str] = ..., inliers: _Optional[int] = ..., votes: _Optional[int] = ..., putative_matches: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., query_locations: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ..., database_locations: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ..., transform: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ..., accepted: _Optional[bool] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("neighbours_ms", "matching_ms", "verify_ms", "total_ms")
    NEIGHBOURS_MS_FIELD_NUMBER: _ClassVar[int]
    MATCHING_MS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    neighbours_ms: float
    matching_ms: float
    verify_ms: float
    total_ms: float
    def __init__(self, neighbours_ms: _Optional[float] = ..., matching_ms: _Optional[float] = ..., verify_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("candidates", "match", "best_label", "best_image_id", "timing", "min_inliers", "partial", "missing_shards")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    BEST_LABEL_FIELD_NUMBER: _ClassVar[int]
    BEST_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    MIN_INLIERS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    match: bool
    best_label: str
    best_image_id: str
    timing: Timing
    min_inliers: int
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., match: _Optional[bool] = ..., best_label: _Optional[str] = ..., best_image_id: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., min_inliers: _Optional[int] = ..., partial: _Optional[bool] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("query", "reference", "min_inliers")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_INLIERS_FIELD_NUMBER: _ClassVar[int]
    query: _features_pb2.Features
    reference: _features_pb2.Features
    min_inliers: int
    def __init__(self, query: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., reference: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., min_inliers: _Optional[int] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("inliers", "putative_matches", "match", "min_inliers", "query_locations", "reference_locations", "transform")
    INLIERS_FIELD_NUMBER: _ClassVar[int]
    PUTATIVE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    MIN_INLIERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    inliers: int
    putative_matches: int
    match: bool
    min_inliers: int
    query_locations: _features_pb2.Float32Matrix
    reference_locations: _features_pb2.Float32Matrix
    transform: _features_pb2.Float32Matrix
    def __init__(self, inliers: _Optional[int] = ..., putative_matches: _Optional[int] = ..., match: _Optional[bool] = ..., min_inliers: _Optional[int] = ..., query_locations: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ..., reference_locations: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ..., transform: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ...) -> None: ...

class GetIndexInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("images", "descriptors", "dimension", "backend", "bytes_on_disk", "bytes_per_descriptor", "labels", "generation", "segments", "growing_descriptors", "shards", "shard_index", "disk_full", "settled", "bytes_in_memory", "memory_bytes_per_descriptor", "codebook_version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BYTES_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    GROWING_DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    DISK_FULL_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_MEMORY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_PER_DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    CODEBOOK_VERSION_FIELD_NUMBER: _ClassVar[int]
    images: int
    descriptors: int
    dimension: int
    backend: str
    bytes_on_disk: int
    bytes_per_descriptor: float
    labels: int
    generation: int
    segments: int
    growing_descriptors: int
    shards: int
    shard_index: int
    disk_full: bool
    settled: bool
    bytes_in_memory: int
    memory_bytes_per_descriptor: float
    codebook_version: str
    def __init__(self, images: _Optional[int] = ..., descriptors: _Optional[int] = ..., dimension: _Optional[int] = ..., backend: _Optional[str] = ..., bytes_on_disk: _Optional[int] = ..., bytes_per_descriptor: _Optional[float] = ..., labels: _Optional[int] = ..., generation: _Optional[int] = ..., segments: _Optional[int] = ..., growing_descriptors: _Optional[int] = ..., shards: _Optional[int] = ..., shard_index: _Optional[int] = ..., disk_full: _Optional[bool] = ..., settled: _Optional[bool] = ..., bytes_in_memory: _Optional[int] = ..., memory_bytes_per_descriptor: _Optional[float] = ..., codebook_version: _Optional[str] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ImageRecord(_message.Message):
    __slots__ = ("image_id", "label", "metadata", "num_features")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    label: str
    metadata: _containers.ScalarMap[str, str]
    num_features: int
    def __init__(self, image_id: _Optional[str] = ..., label: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., num_features: _Optional[int] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "next_page_token")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImageRecord]
    next_page_token: str
    def __init__(self, images: _Optional[_Iterable[_Union[ImageRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
