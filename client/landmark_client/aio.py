"""asyncio twins of the clients: the same method names and arguments, awaitable.

from landmark_client.aio import LandmarkClient
async with LandmarkClient(extractor_addr, search_addr, timeout=10) as client:
    rec = await client.recognize("photo.jpg")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence

import grpc

from landmark.connection import Connection
from landmark.v1 import extractor_pb2, extractor_pb2_grpc, search_pb2, search_pb2_grpc
from landmark.wire import Features

from . import _convert as conv
from ._aio_core import _AsyncClient
from ._core import DEFAULT_TIMEOUT, extractor_address, search_address
from .aio_ingest import IngestTwins
from .errors import LandmarkError
from .images import ImageInput
from .types import (
    AddResult,
    Comparison,
    ExtractItem,
    ExtractorInfo,
    ImageRecord,
    ImageToAdd,
    IndexInfo,
    Recognition,
    SearchResult,
)


class ExtractorClient(_AsyncClient):
    _service = "extractor"
    _health_name = "landmark.v1.Extractor"
    _stub_class = extractor_pb2_grpc.ExtractorStub
    _default_address = staticmethod(extractor_address)

    async def extract(
        self,
        image: ImageInput,
        *,
        max_features: int = 0,
        max_image_size: int = 0,
        score_threshold: float | None = None,
        image_scales: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Features:
        request = conv.extract_request(
            image, max_features, max_image_size, "", score_threshold, image_scales
        )
        response = await self._call("Extract", request, timeout)
        return conv.features_from_proto(response.features)

    async def extract_many(
        self,
        images: Iterable[tuple[str, ImageInput]],
        *,
        max_features: int = 0,
        max_image_size: int = 0,
        score_threshold: float | None = None,
        image_scales: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[ExtractItem]:
        requests = (
            conv.extract_request(
                img, max_features, max_image_size, rid, score_threshold, image_scales
            )
            for rid, img in images
        )
        call = self._stubs[self._rotation.pick()].ExtractStream(
            requests,
            timeout=self.timeout if timeout is None else timeout,
            metadata=self.connection.metadata,
        )
        try:
            async for response in call:
                yield conv.extract_item(response)
        except grpc.RpcError as err:
            raise LandmarkError.from_rpc(err, self._service, self.address) from None

    async def info(self, *, timeout: float | None = None) -> ExtractorInfo:
        request = extractor_pb2.GetExtractorInfoRequest()
        return conv.extractor_info(await self._call("GetExtractorInfo", request, timeout))


class SearchClient(_AsyncClient):
    _service = "search service"
    _health_name = "landmark.v1.Search"
    _stub_class = search_pb2_grpc.SearchStub
    _default_address = staticmethod(search_address)

    async def add_images(
        self,
        images: Iterable[ImageToAdd],
        *,
        on_conflict: str = "error",
        timeout: float | None = None,
    ) -> AddResult:
        added = skipped = replaced = 0
        for request in conv.add_batches(images, on_conflict):
            r = await self._call("AddImages", request, timeout, retry=False)
            added, skipped, replaced = added + r.added, skipped + r.skipped, replaced + r.replaced
        return AddResult(added, skipped, replaced)

    async def remove_images(
        self, image_ids: Iterable[str], *, timeout: float | None = None
    ) -> tuple[int, list[str]]:
        request = search_pb2.RemoveImagesRequest(image_ids=list(image_ids))
        r = await self._call("RemoveImages", request, timeout, retry=False)
        return r.removed, list(r.not_found)

    async def search(
        self,
        features: Features,
        *,
        top_k: int = 10,
        shortlist: int = 0,
        min_inliers: int = 0,
        exclude: Iterable[str] = (),
        include_matches: bool = False,
        include_rejected: bool = False,
        allow_partial: bool = False,
        timeout: float | None = None,
    ) -> SearchResult:
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
        return conv.search_result(await self._call("Search", request, timeout))

    async def compare(
        self,
        query: Features,
        reference: Features,
        *,
        min_inliers: int = 0,
        timeout: float | None = None,
    ) -> Comparison:
        request = conv.compare_request(query, reference, min_inliers)
        return conv.comparison(await self._call("Compare", request, timeout))

    async def index_info(self, *, timeout: float | None = None) -> IndexInfo:
        request = search_pb2.GetIndexInfoRequest()
        return conv.index_info(await self._call("GetIndexInfo", request, timeout))

    async def list_images(
        self, *, page_size: int = 1000, timeout: float | None = None
    ) -> AsyncIterator[ImageRecord]:
        token = ""
        while True:
            request = search_pb2.ListImagesRequest(page_size=page_size, page_token=token)
            page = await self._call("ListImages", request, timeout)
            for m in page.images:
                yield conv.image_record(m)
            token = page.next_page_token
            if not token:
                return


class LandmarkClient(IngestTwins):
    """asyncio twin of landmark_client.LandmarkClient."""

    def __init__(
        self,
        extractor: str | None = None,
        search: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
    ) -> None:
        self.timeout = timeout
        self.extractor = ExtractorClient(extractor, timeout=timeout, connection=connection)
        self.search = SearchClient(search, timeout=timeout, connection=connection)

    async def recognize(
        self,
        image: ImageInput,
        *,
        top_k: int = 5,
        include_matches: bool = False,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
    ) -> Recognition:
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        features = await self.extractor.extract(image, timeout=budget)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LandmarkError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"extraction used the whole {budget}s timeout"
            )
        result = await self.search.search(
            features,
            top_k=top_k,
            include_matches=include_matches,
            exclude=exclude,
            timeout=remaining,
        )
        return Recognition(features, result)

    async def compare(
        self, image: ImageInput, reference: ImageInput, *, timeout: float | None = None
    ) -> Comparison:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        left = lambda: max(0.001, deadline - time.monotonic())  # noqa: E731
        query = await self.extractor.extract(image, timeout=left())
        ref = await self.extractor.extract(reference, timeout=left())
        return await self.search.compare(query, ref, timeout=left())

    async def add_image(
        self,
        image: ImageInput,
        image_id: str,
        label: str,
        *,
        metadata: dict[str, str] | None = None,
        on_conflict: str = "error",
        timeout: float | None = None,
    ) -> AddResult:
        features = await self.extractor.extract(image, timeout=timeout)
        entry = ImageToAdd(image_id, label, features, dict(metadata or {}))
        return await self.search.add_images([entry], on_conflict=on_conflict, timeout=timeout)

    async def close(self) -> None:
        await asyncio.gather(self.extractor.close(), self.search.close())

    async def __aenter__(self) -> LandmarkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["ExtractorClient", "LandmarkClient", "SearchClient"]
