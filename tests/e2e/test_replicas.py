"""Replicated shards as processes on loopback: 3 NATS servers, 2 shards of 2 replicas
following the changelog, a coordinator over the replica sets, an extractor, and
`landmark index` over the real photos while one replica is killed with SIGKILL; then a
replica's folder deleted."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time

import pytest

from landmark_client import ExtractorClient, SearchClient
from tests.e2e.test_scale_out import Topology
from tests.nats_cluster import NatsCluster


@pytest.mark.slow
def test_a_replica_killed_during_indexing_loses_no_acknowledged_photo(landmarks_dir, tmp_path):
    nats = NatsCluster(tmp_path / "nats")
    top = Topology(tmp_path, settings={})
    try:
        changelog = ",".join(nats.urls)

        def replica(i: int, r: int) -> str:
            return top.start(
                f"s{i}r{r}", "search", "--index-dir", str(tmp_path / f"s{i}r{r}"),
                "--changelog", changelog, "--shard-index", str(i), "--shard-count", "2",
            )  # fmt: skip

        extractor = top.start("extractor", "extractor", "--backend", "sift")
        sets = [[replica(i, r) for r in range(2)] for i in range(2)]
        coordinator = top.start(
            "coordinator", "coordinator", "--shards", ",".join("|".join(s) for s in sets)
        )
        with open(landmarks_dir / "manifest.csv", newline="") as fh:
            photos = [r["file"] for r in csv.DictReader(fh) if r["landmark"] != "distractor"]
        with ExtractorClient(extractor, timeout=60) as ex:
            probes = {p: ex.extract(landmarks_dir / p, max_features=500) for p in photos[:3]}
        landmark = str(sys.executable).rsplit("/", 1)[0] + "/landmark"
        indexing = subprocess.Popen(
            [landmark, "index", str(landmarks_dir), "--json"]
            + ["--extractor", extractor, "--search", coordinator],
            stdout=subprocess.PIPE,
            stderr=open(tmp_path / "index.log", "wb"),
        )
        with SearchClient(coordinator, timeout=60) as co:
            while co.index_info().images < 20 and indexing.poll() is None:
                time.sleep(0.1)
            top.kill("s0r1")  # SIGKILL, mid-ingest
            answers = []
            while indexing.poll() is None:  # searches go on, whole
                answers.append(co.search(probes[photos[0]], top_k=1))
            assert answers and not any(a.partial for a in answers)
            report = json.loads(indexing.stdout.read())
            assert indexing.returncode == 0 and report["failed"] == []
            # every photo, acknowledged at once or on a retry the report counts apart (an
            # add the killed replica published but never answered), and nothing else
            assert {r.image_id for r in co.list_images()} == set(photos)
            assert co.index_info().images == len(photos) >= report["added"]
            for p, f in probes.items():
                assert co.search(f, top_k=1).best.image_id == p
        # the killed replica, restarted on its folder, catches up with its peer; one of the
        # other shard whose folder is deleted rebuilds from the changelog alone
        sets[0][1] = replica(0, 1)
        top.kill("s1r0")
        shutil.rmtree(tmp_path / "s1r0")
        sets[1][0] = replica(1, 0)
        for rebuilt, peer in ((sets[0][1], sets[0][0]), (sets[1][0], sets[1][1])):
            with SearchClient(rebuilt) as back, SearchClient(peer) as other:
                mine = {r.image_id for r in back.list_images()}
                assert mine and mine == {r.image_id for r in other.list_images()}
    finally:
        top.stop()
        nats.stop()
