"""asyncio twins of the clients: the same method names and arguments, awaitable.

from landmark_client.aio import LandmarkClient
async with LandmarkClient(extractor_addr, search_addr, timeout=10) as client:
    rec = await client.recognize("photo.jpg")
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TypeVar

import grpc

from landmark.connection import Connection
from landmark.v1 import extractor_pb2_grpc, search_pb2_grpc
from landmark.wire import Features

from . import _convert as conv
from . import _ops as ops
from ._aio_core import _AsyncClient, drive
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

T = TypeVar("T")


class ExtractorClient(_AsyncClient):
    _kind = ops.EXTRACTOR
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
        op = ops.extract(
            image, max_features, max_image_size, score_threshold, image_scales, timeout
        )
        return await self._run(op)

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
        return await self._run(ops.extractor_info(timeout))


class SearchClient(_AsyncClient):
    _kind = ops.SEARCH
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
        return await self._run(ops.add_images(images, on_conflict, timeout))

    async def remove_images(
        self, image_ids: Iterable[str], *, timeout: float | None = None
    ) -> tuple[int, list[str]]:
        return await self._run(ops.remove_images(image_ids, timeout))

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
        op = ops.search(
            features,
            top_k,
            shortlist,
            min_inliers,
            exclude,
            include_matches,
            include_rejected,
            allow_partial,
            timeout,
        )
        return await self._run(op)

    async def compare(
        self,
        query: Features,
        reference: Features,
        *,
        min_inliers: int = 0,
        timeout: float | None = None,
    ) -> Comparison:
        return await self._run(ops.compare(query, reference, min_inliers, timeout))

    async def index_info(self, *, timeout: float | None = None) -> IndexInfo:
        return await self._run(ops.index_info(timeout))

    async def list_images(
        self, *, page_size: int = 1000, timeout: float | None = None
    ) -> AsyncIterator[ImageRecord]:
        token = ""
        while True:
            records, token = await self._run(ops.image_page(page_size, token, timeout))
            for record in records:
                yield record
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

    async def _run(self, op: ops.Op[T]) -> T:
        return await drive(op, {ops.EXTRACTOR: self.extractor, ops.SEARCH: self.search})

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
        return await self._run(ops.recognize(image, top_k, include_matches, exclude, budget))

    async def compare(
        self, image: ImageInput, reference: ImageInput, *, timeout: float | None = None
    ) -> Comparison:
        budget = self.timeout if timeout is None else timeout
        return await self._run(ops.compare_photos(image, reference, budget))

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
        op = ops.add_image(image, image_id, label, metadata, on_conflict, timeout)
        return await self._run(op)

    async def close(self) -> None:
        await asyncio.gather(self.extractor.close(), self.search.close())

    async def __aenter__(self) -> LandmarkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["ExtractorClient", "LandmarkClient", "SearchClient"]
