from landmark.v1 import features_pb2 as _features_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExtractOptions(_message.Message):
    __slots__ = ("max_features", "max_image_size", "score_threshold", "image_scales")
    MAX_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SCALES_FIELD_NUMBER: _ClassVar[int]
    max_features: int
    max_image_size: int
    score_threshold: float
    image_scales: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, max_features: _Optional[int] = ..., max_image_size: _Optional[int] = ..., score_threshold: _Optional[float] = ..., image_scales: _Optional[_Iterable[float]] = ...) -> None: ...

class ExtractRequest(_message.Message):
    __slots__ = ("image", "options", "request_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    options: ExtractOptions
    request_id: str
    def __init__(self, image: _Optional[bytes] = ..., options: _Optional[_Union[ExtractOptions, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExtractResponse(_message.Message):
    __slots__ = ("features", "request_id", "error", "processed_width", "processed_height", "extract_ms")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_WIDTH_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXTRACT_MS_FIELD_NUMBER: _ClassVar[int]
    features: _features_pb2.Features
    request_id: str
    error: _features_pb2.ItemError
    processed_width: int
    processed_height: int
    extract_ms: float
    def __init__(self, features: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[_features_pb2.ItemError, _Mapping]] = ..., processed_width: _Optional[int] = ..., processed_height: _Optional[int] = ..., extract_ms: _Optional[float] = ...) -> None: ...

class GetExtractorInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExtractorInfo(_message.Message):
    __slots__ = ("backend", "dimension", "default_max_features", "max_features_limit", "default_max_image_size", "max_image_size_limit", "max_pixels", "max_image_bytes", "formats", "device", "max_concurrent")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MAX_FEATURES_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_SIZE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    backend: str
    dimension: int
    default_max_features: int
    max_features_limit: int
    default_max_image_size: int
    max_image_size_limit: int
    max_pixels: int
    max_image_bytes: int
    formats: _containers.RepeatedScalarFieldContainer[str]
    device: str
    max_concurrent: int
    def __init__(self, backend: _Optional[str] = ..., dimension: _Optional[int] = ..., default_max_features: _Optional[int] = ..., max_features_limit: _Optional[int] = ..., default_max_image_size: _Optional[int] = ..., max_image_size_limit: _Optional[int] = ..., max_pixels: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., formats: _Optional[_Iterable[str]] = ..., device: _Optional[str] = ..., max_concurrent: _Optional[int] = ...) -> None: ...
