"""Every request of the SDK, written once for the sync and the asyncio clients.

An operation is a generator: it yields the calls it needs (``Call``: a method of one
service, retried on the next replica when ``retry``) and its pauses (``Pause``), receives
each call's response (or, thrown in, its LandmarkError), and returns its result.
``_core.drive`` runs one blocking and ``_aio_core.drive`` awaiting, ``resume`` taking each
to its next step; nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from landmark.v1 import extractor_pb2, search_pb2
from landmark.wire import Features

from . import _convert as conv
from .errors import LandmarkError
from .images import ImageInput
from .types import (
    AddResult,
    Comparison,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    Recognition,
    SearchResult,
)

EXTRACTOR, SEARCH = "extractor", "search"  # the service a Call goes to
READY_POLL = 0.1  # seconds between health checks while waiting for SERVING

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    service: str  # EXTRACTOR or SEARCH
    method: str
    request: Any
    timeout: float | None  # None: the client's
    retry: bool = True  # UNAVAILABLE retried on the next replica while the deadline allows
    health: bool = False  # to the standard health service instead


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Done:
    value: Any


Op = Generator[Call | Pause, Any, T]


def resume(
    op: Op[T], response: Any = None, error: LandmarkError | None = None
) -> Call | Pause | Done:
    """The operation's next step, after the ``response`` to its last call (or its
    ``error``, raised where the operation made the call; None to start it)."""
    try:
        if error is not None:
            return op.throw(error)
        return op.send(response)
    except StopIteration as finished:
        return Done(finished.value)


def health(service: str, name: str, timeout: float | None) -> Op[str]:
    request = health_pb2.HealthCheckRequest(service=name)
    response = yield Call(service, "Check", request, timeout, retry=False, health=True)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def wait_ready(service: str, name: str, where: str, timeout: float) -> Op[None]:
    """Until the service reports SERVING; LandmarkError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            left = min(2.0, max(0.1, deadline - time.monotonic()))
            last = yield from health(service, name, left)
            if last == "SERVING":
                return
        except LandmarkError as err:
            last = err.code.name
        yield Pause(READY_POLL)
    raise LandmarkError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"{where} not ready after {timeout}s (last status: {last})",
    )


# -- the extractor ------------------------------------------------------------------------


def extract(
    image: ImageInput,
    max_features: int = 0,
    max_image_size: int = 0,
    score_threshold: float | None = None,
    image_scales: Sequence[float] | None = None,
    timeout: float | None = None,
) -> Op[Features]:
    request = conv.extract_request(
        image, max_features, max_image_size, "", score_threshold, image_scales
    )
    response = yield Call(EXTRACTOR, "Extract", request, timeout)
    return conv.features_from_proto(response.features)


def extractor_info(timeout: float | None) -> Op[ExtractorInfo]:
    request = extractor_pb2.GetExtractorInfoRequest()
    return conv.extractor_info((yield Call(EXTRACTOR, "GetExtractorInfo", request, timeout)))


# -- the search service -------------------------------------------------------------------


def add_images(
    images: Iterable[ImageToAdd], on_conflict: str, timeout: float | None
) -> Op[AddResult]:
    """Large inputs go in several requests; each is all-or-nothing and is not resent."""
    added = skipped = replaced = 0
    for request in conv.add_batches(images, on_conflict):
        r = yield Call(SEARCH, "AddImages", request, timeout, retry=False)
        added, skipped, replaced = added + r.added, skipped + r.skipped, replaced + r.replaced
    return AddResult(added, skipped, replaced)


def remove_images(image_ids: Iterable[str], timeout: float | None) -> Op[tuple[int, list[str]]]:
    request = search_pb2.RemoveImagesRequest(image_ids=list(image_ids))
    r = yield Call(SEARCH, "RemoveImages", request, timeout, retry=False)
    return r.removed, list(r.not_found)


def search(
    features: Features,
    top_k: int = 10,
    shortlist: int = 0,
    min_inliers: int = 0,
    exclude: Iterable[str] = (),
    include_matches: bool = False,
    include_rejected: bool = False,
    allow_partial: bool = False,
    timeout: float | None = None,
) -> Op[SearchResult]:
    request = conv.search_request(
        features,
        top_k,
        shortlist,
        min_inliers,
        exclude,
        include_matches,
        include_rejected,
        allow_partial,
    )
    return conv.search_result((yield Call(SEARCH, "Search", request, timeout)))


def compare(
    query: Features, reference: Features, min_inliers: int, timeout: float | None
) -> Op[Comparison]:
    request = conv.compare_request(query, reference, min_inliers)
    return conv.comparison((yield Call(SEARCH, "Compare", request, timeout)))


def index_info(timeout: float | None) -> Op[IndexInfo]:
    request = search_pb2.GetIndexInfoRequest()
    return conv.index_info((yield Call(SEARCH, "GetIndexInfo", request, timeout)))


def image_page(
    page_size: int, token: str, timeout: float | None
) -> Op[tuple[list[ImageRecord], str]]:
    """One page of the index's images and the token of the next ("" after the last)."""
    request = search_pb2.ListImagesRequest(page_size=page_size, page_token=token)
    page = yield Call(SEARCH, "ListImages", request, timeout)
    return [conv.image_record(m) for m in page.images], page.next_page_token


# -- both: a photo through the extractor, then the search service --------------------------


def recognize(
    image: ImageInput,
    top_k: int,
    include_matches: bool,
    exclude: Iterable[str],
    budget: float,
) -> Op[Recognition]:
    """``budget`` seconds bound both calls together."""
    deadline = time.monotonic() + budget
    features = yield from extract(image, timeout=budget)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise LandmarkError(
            grpc.StatusCode.DEADLINE_EXCEEDED, f"extraction used the whole {budget}s timeout"
        )
    result = yield from search(
        features,
        top_k=top_k,
        include_matches=include_matches,
        exclude=exclude,
        timeout=remaining,
    )
    return Recognition(features, result)


def compare_photos(image: ImageInput, reference: ImageInput, budget: float) -> Op[Comparison]:
    """``budget`` seconds bound the three calls together."""
    deadline = time.monotonic() + budget

    def left() -> float:
        return max(0.001, deadline - time.monotonic())

    query = yield from extract(image, timeout=left())
    ref = yield from extract(reference, timeout=left())
    return (yield from compare(query, ref, 0, left()))


def add_image(
    image: ImageInput,
    image_id: str,
    label: str,
    metadata: dict[str, str] | None,
    on_conflict: str,
    timeout: float | None,
) -> Op[AddResult]:
    features = yield from extract(image, timeout=timeout)
    entry = ImageToAdd(image_id, label, features, dict(metadata or {}))
    return (yield from add_images([entry], on_conflict, timeout))
