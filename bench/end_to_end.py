"""Recognition through both services, as a caller sees it, at growing concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import DATA, pct


def end_to_end(backend: str, requests_per_level: int = 24) -> list[dict]:
    from landmark_client import LandmarkClient
    from landmark_client.gallery import scan
    from landmark_client.indexing import index_gallery
    from landmark_client.local import local_services

    photos = [g.path.read_bytes() for g in scan(DATA) if g.label != "distractor"]
    rows = []
    with local_services(backend) as (extractor, search):
        with LandmarkClient(extractor, search, timeout=300) as client:
            index_gallery(DATA, client)
            for clients in (1, 4, 16):
                lat: list[float] = []

                def one(i: int, lat: list[float] = lat) -> None:
                    t = time.perf_counter()
                    client.recognize(photos[i % len(photos)])
                    lat.append((time.perf_counter() - t) * 1e3)

                t = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(one, range(requests_per_level)))
                wall = time.perf_counter() - t
                rows.append(
                    {
                        "backend": backend,
                        "clients": clients,
                        "requests": requests_per_level,
                        "p50_ms": pct(lat, 50),
                        "p95_ms": pct(lat, 95),
                        "throughput_per_s": round(requests_per_level / wall, 2),
                    }
                )
    return rows
