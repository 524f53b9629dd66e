"""The one place where the search side's errors become gRPC status codes (the search
service and the coordinator both answer through it)."""

from __future__ import annotations

import logging

import grpc

from landmark.connection import RETRY_AFTER_MS
from serving.interceptor import gone_code

from .errors import (
    AlreadyExists,
    BufferFull,
    Cancelled,
    DiskFull,
    FeatureMismatch,
    InvalidRequest,
    Stopped,
    StorageFailure,
    Unavailable,
)

log = logging.getLogger(__name__)

CHANGELOG_RETRY_MS = 1000  # the hint of a write the changelog could not take

CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (FeatureMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Cancelled, grpc.StatusCode.CANCELLED),
    (DiskFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BufferFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StorageFailure, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (Stopped, grpc.StatusCode.UNAVAILABLE),
]


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """End the call with the status ``exc`` stands for; anything unforeseen is INTERNAL
    (logged with its traceback, never shown to the caller). A refusal that passes with
    time carries its hint in the trailing metadata (RETRY_AFTER_MS, milliseconds): a full
    buffer, or a changelog without a quorum (which the caller then tells from a service
    that does not answer at all)."""
    if isinstance(exc, BufferFull):
        context.set_trailing_metadata(((RETRY_AFTER_MS, str(int(exc.retry_after * 1000))),))
    if isinstance(exc, Unavailable):
        context.set_trailing_metadata(((RETRY_AFTER_MS, str(CHANGELOG_RETRY_MS)),))
    for kind, code in CODES:
        if isinstance(exc, kind):
            context.abort(gone_code(context) if kind is Cancelled else code, str(exc))
    log.exception("unexpected error", exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error in the search service; see its log")
