"""The asyncio twins against the real servers."""

import asyncio

import grpc
import pytest

from landmark_client import ImageToAdd, LandmarkError, aio
from tests.conftest import sample_photo


def test_async_clients_chain_both_services(extractor_server, search_server):
    async def main():
        async with aio.LandmarkClient(extractor_server, search_server, timeout=60) as client:
            assert await client.extractor.health() == "SERVING"
            items = [
                i
                async for i in client.extractor.extract_many(
                    [("coffee", sample_photo("coffee.png")), ("bad", b"nope")]
                )
            ]
            assert items[0].features is not None and items[1].error is not None
            await client.search.add_images([ImageToAdd("coffee", "coffee", items[0].features)])
            recs = await asyncio.gather(
                *(client.recognize(sample_photo("coffee.png")) for _ in range(3))
            )
            assert [r.label for r in recs] == ["coffee"] * 3
            assert [r.image_id async for r in client.search.list_images()] == ["coffee"]
            assert (await client.search.index_info()).images == 1
            with pytest.raises(LandmarkError) as err:
                await client.search.search(items[0].features, top_k=0)
            assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(main())


def test_async_ingest_adds_the_good_photos_and_reports_the_bad(extractor_server, search_server):
    from landmark_client.types import Photo

    photos = [
        Photo("coffee", "coffee", sample_photo("coffee.png")),
        Photo("astronaut", "astronaut", sample_photo("astronaut.png"), {"k": "v"}),
        Photo("bad", "x", b"not a photo"),
    ]

    async def main():
        async with aio.LandmarkClient(extractor_server, search_server, timeout=60) as client:
            report = await client.ingest(photos)
            assert (report.added, [i for i, _ in report.failed]) == (2, ["bad"])
            again = await client.ingest(photos[:2])  # already there: skipped, nothing twice
            assert (again.added, again.already_indexed) == (0, 2)
            listed = {r.image_id: r.metadata async for r in client.search.list_images()}
            assert listed == {"astronaut": {"k": "v"}, "coffee": {}}

    asyncio.run(main())
