from landmark.v1 import features_pb2 as _features_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LabelsResponse(_message.Message):
    __slots__ = ("labels",)
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, labels: _Optional[_Iterable[str]] = ...) -> None: ...

class NeighboursRequest(_message.Message):
    __slots__ = ("features", "k", "exclude_image_ids", "shortlist")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    SHORTLIST_FIELD_NUMBER: _ClassVar[int]
    features: _features_pb2.Features
    k: int
    exclude_image_ids: _containers.RepeatedScalarFieldContainer[str]
    shortlist: int
    def __init__(self, features: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., k: _Optional[int] = ..., exclude_image_ids: _Optional[_Iterable[str]] = ..., shortlist: _Optional[int] = ...) -> None: ...

class NeighbourImage(_message.Message):
    __slots__ = ("image_id", "label", "metadata", "width", "height", "num_features")
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
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    label: str
    metadata: _containers.ScalarMap[str, str]
    width: int
    height: int
    num_features: int
    def __init__(self, image_id: _Optional[str] = ..., label: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_features: _Optional[int] = ...) -> None: ...

class NeighboursResponse(_message.Message):
    __slots__ = ("images", "hit_ids", "hit_distances", "word_images", "word_shared", "word_scores", "codebook_version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    HIT_IDS_FIELD_NUMBER: _ClassVar[int]
    HIT_DISTANCES_FIELD_NUMBER: _ClassVar[int]
    WORD_IMAGES_FIELD_NUMBER: _ClassVar[int]
    WORD_SHARED_FIELD_NUMBER: _ClassVar[int]
    WORD_SCORES_FIELD_NUMBER: _ClassVar[int]
    CODEBOOK_VERSION_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[NeighbourImage]
    hit_ids: bytes
    hit_distances: bytes
    word_images: bytes
    word_shared: bytes
    word_scores: bytes
    codebook_version: str
    def __init__(self, images: _Optional[_Iterable[_Union[NeighbourImage, _Mapping]]] = ..., hit_ids: _Optional[bytes] = ..., hit_distances: _Optional[bytes] = ..., word_images: _Optional[bytes] = ..., word_shared: _Optional[bytes] = ..., word_scores: _Optional[bytes] = ..., codebook_version: _Optional[str] = ...) -> None: ...

class MatchRequest(_message.Message):
    __slots__ = ("features", "image_ids")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    features: _features_pb2.Features
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, features: _Optional[_Union[_features_pb2.Features, _Mapping]] = ..., image_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MatchedImage(_message.Message):
    __slots__ = ("image_id", "query_indices", "locations")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_INDICES_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    query_indices: bytes
    locations: _features_pb2.Float32Matrix
    def __init__(self, image_id: _Optional[str] = ..., query_indices: _Optional[bytes] = ..., locations: _Optional[_Union[_features_pb2.Float32Matrix, _Mapping]] = ...) -> None: ...

class MatchResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[MatchedImage]
    def __init__(self, images: _Optional[_Iterable[_Union[MatchedImage, _Mapping]]] = ...) -> None: ...
