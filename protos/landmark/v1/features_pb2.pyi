from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Float32Matrix(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Features(_message.Message):
    __slots__ = ("backend", "dimension", "locations", "descriptors", "scales", "strengths", "image_width", "image_height")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    STRENGTHS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    backend: str
    dimension: int
    locations: Float32Matrix
    descriptors: Float32Matrix
    scales: Float32Matrix
    strengths: Float32Matrix
    image_width: int
    image_height: int
    def __init__(self, backend: _Optional[str] = ..., dimension: _Optional[int] = ..., locations: _Optional[_Union[Float32Matrix, _Mapping]] = ..., descriptors: _Optional[_Union[Float32Matrix, _Mapping]] = ..., scales: _Optional[_Union[Float32Matrix, _Mapping]] = ..., strengths: _Optional[_Union[Float32Matrix, _Mapping]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
