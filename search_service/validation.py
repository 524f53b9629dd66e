"""The search service's door: features from a request are checked before they touch the
index or a search, so one poisoned image cannot break other callers' searches."""

from __future__ import annotations

from landmark import contract
from landmark.v1 import features_pb2
from landmark.wire import Features, features_from_proto

from .errors import InvalidRequest


def request_features(msg: features_pb2.Features, where: str = "features") -> Features:
    """Features from a request, or InvalidRequest saying what is wrong with them."""
    try:
        f = features_from_proto(msg)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    check_features(f, where)
    return f


def check_features(f: Features, where: str = "features") -> None:
    """The contract's door (landmark.contract.check), as InvalidRequest naming ``where``."""
    try:
        contract.check(f)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
