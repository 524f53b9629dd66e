"""A multi-process topology on loopback: 2 extractors, 3 search shards and a coordinator,
against one search process holding the same images.

Every index here keeps its images in the exactly-searched growing buffer (sealing off), so
"the same ranking as one shard" can be asserted exactly: image ids and inlier counts.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import grpc
import pytest

from landmark_client import ExtractorClient, ImageToAdd, LandmarkError, SearchClient
from landmark_client.local import spawn_service

EXACT = {
    "LANDMARK_SEAL_DESCRIPTORS": "1000000000",
    "LANDMARK_SEAL_SECONDS": "1000000000",
    "LANDMARK_IDLE_MERGE_SECONDS": "0",
}


class Topology:
    """Service processes on loopback, by name; ``settings``: environment added to theirs."""

    def __init__(self, folder: Path, settings: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = {**os.environ, **(EXACT if settings is None else settings)}
        self.procs: dict[str, object] = {}
        self.addresses: dict[str, str] = {}

    def start(self, name: str, *args: str, port: int = 0) -> str:
        proc, address = spawn_service(
            [*args, "--port", str(port), "--metrics-port", "-1"],
            self.folder / f"{name}.log",
            self.env,
        )
        self.procs[name], self.addresses[name] = proc, address
        return address

    def shard(self, i: int) -> str:
        index = str(self.folder / f"shard{i}")
        return self.start(f"shard{i}", "search", "--index-dir", index, "--shard-index", str(i))

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except Exception:
                proc.kill()


@pytest.mark.slow
def test_sharded_search_ranks_like_one_shard(landmarks_dir, tmp_path):
    top = Topology(tmp_path)
    try:
        # sift: this test is about shards and replicas, and sift extracts 95 photos fast
        extractors = ",".join(
            top.start(f"extractor{i}", "extractor", "--backend", "sift") for i in range(2)
        )
        shards = [top.shard(i) for i in range(3)]
        coordinator = top.start("coordinator", "coordinator", "--shards", ",".join(shards))
        single = top.start("single", "search", "--index-dir", str(tmp_path / "single"))

        with open(landmarks_dir / "manifest.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        with ExtractorClient(extractors, timeout=120) as ex:
            ex.wait_ready(120)
            # one call per photo: the SDK takes the two replicas in turn
            features = {
                r["file"]: ex.extract(landmarks_dir / r["file"], max_features=500) for r in rows
            }
        gallery = [ImageToAdd(r["file"], r["landmark"], features[r["file"]]) for r in rows]
        # both extractors did part of the work
        for i in range(2):
            assert "Extract" in (tmp_path / f"extractor{i}.log").read_text()

        with SearchClient(coordinator, timeout=120) as co, SearchClient(single, timeout=120) as one:
            co.wait_ready(30)
            assert co.add_images(gallery).added == len(rows)
            one.add_images(gallery)
            info = co.index_info()
            assert (info.images, info.descriptors) == (len(rows), one.index_info().descriptors)
            held = [SearchClient(a).index_info().images for a in shards]
            assert sum(held) == len(rows) and min(held) > 0  # spread over the three

            def ranking(client, image_id, **kw):
                r = client.search(features[image_id], top_k=5, exclude=[image_id], **kw)
                return [(c.image_id, c.inliers) for c in r.candidates], r

            queries = [r["file"] for r in rows]
            for q in queries:
                assert ranking(co, q)[0] == ranking(one, q)[0], q
            answers = {q: ranking(co, q)[0] for q in queries[:12]}

            # adds and removes reach the owning shard
            victim = queries[0]
            assert co.remove_images([victim]) == (1, [])
            assert co.index_info().images == len(rows) - 1
            co.add_images([gallery[0]])

            # a shard down: fail by default, or a flagged partial answer
            top.kill("shard1")
            with pytest.raises(LandmarkError) as err:
                co.search(features[queries[1]], exclude=[queries[1]])
            assert err.value.code is grpc.StatusCode.UNAVAILABLE and "shard 1" in err.value.details
            partial = co.search(features[queries[1]], exclude=[queries[1]], allow_partial=True)
            assert partial.partial and any("shard 1" in m for m in partial.missing_shards)

            # back up on the same index directory: the full answer again
            shards[1] = top.shard(1)
            SearchClient(shards[1]).wait_ready(30)
            co.close()
        top.kill("coordinator")
        coordinator = top.start("coordinator", "coordinator", "--shards", ",".join(shards))
        with SearchClient(coordinator, timeout=120) as co:
            for q, expected in answers.items():
                result = co.search(features[q], top_k=5, exclude=[q])
                assert not result.partial
                assert [(c.image_id, c.inliers) for c in result.candidates] == expected, q

        # an extractor down: the SDK retries the other one
        top.kill("extractor1")
        with ExtractorClient(extractors, timeout=60) as ex:
            for r in rows[:4]:
                assert len(ex.extract(landmarks_dir / r["file"], max_features=50)) > 0
    finally:
        top.stop()
