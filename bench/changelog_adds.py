"""Adds through the changelog against a single node, in one run (`make bench-ingest
PART=changelog`; all parts: `make bench-ingest`).

Two search processes on this machine, each on an empty index: one on its own write-ahead
log, one a replica following a changelog on 3 NATS servers (loopback, the binary `make
install` puts in .venv/bin) that publishes every add there and answers once it has applied
it. The same clients add the same images (1,000 unit descriptors each, as ALIKED gives
per photo, one image per call, CLIENTS calls at a time, as `landmark index` sends them;
a full buffer's refusal retried after its hint) to each in turn, ROUNDS times, which one
goes first alternating, each run starting once both have settled (sealed and merged what
the last run added: neither works in the background during the other's run); the report
gives images/s per target and the ratio of the means. Then a third replica starts on an
empty folder, as after a lost disk: the time until it serves every image of the stream.
Last, NATS servers are killed under the replica: how long its adds take, and fail.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import spawn, stop

CLIENTS = 4
IMAGES = 400  # per round and target
ROUNDS = 4
KILLS = 2  # times each NATS server is killed in turn (failover)


def features(seed: int):  # noqa: ANN201
    from landmark.wire import Features

    rng = np.random.default_rng(seed)
    d = rng.normal(size=(1000, 128)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    xy = rng.uniform(0, 1000, size=(1000, 2)).astype(np.float32)
    return Features("aliked", xy, d, (1000, 1000))


def add_rate(address: str, first: int, images: list) -> float:  # noqa: ANN001
    """Images/s of CLIENTS clients adding ``images`` one per call."""
    from landmark_client import ImageToAdd, LandmarkError, SearchClient

    with SearchClient(address, timeout=120) as client:
        client.wait_ready(60)

        def add(k: int) -> None:
            while True:  # a full buffer: again after its hint, as `landmark index` does
                try:
                    client.add_images([ImageToAdd(f"img-{first + k}", "l", images[k])])
                    return
                except LandmarkError as err:
                    if err.retry_after is None:
                        raise
                    time.sleep(err.retry_after)

        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(add, range(len(images))))
        return len(images) / (time.perf_counter() - start)


def settle(addresses: list[str], seconds: float = 600.0) -> None:
    """Until every index at ``addresses`` has nothing left to do in the background."""
    from landmark_client import SearchClient

    deadline = time.monotonic() + seconds
    for address in addresses:
        with SearchClient(address, timeout=30) as client:
            while not client.index_info().settled:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{address} did not settle within {seconds:.0f} s")
                time.sleep(0.5)


def changelog_adds(tmp: Path) -> dict:
    from tests.nats_cluster import NatsCluster

    images = [features(k) for k in range(IMAGES)]
    nats = NatsCluster(tmp / "nats")
    procs = []
    try:
        single, address = spawn(["search", "--index-dir", str(tmp / "single")], tmp, "single.log")
        procs.append(single)
        replica, replica_address = spawn(
            ["search", "--index-dir", str(tmp / "replica"), "--changelog", ",".join(nats.urls)],
            tmp,
            "replica.log",
        )
        procs.append(replica)
        rates: dict[str, list[float]] = {"single_node": [], "changelog": []}
        targets = {"single_node": address, "changelog": replica_address}
        for r in range(ROUNDS):
            for name in list(targets)[:: 1 if r % 2 == 0 else -1]:
                settle(list(targets.values()))
                rates[name].append(add_rate(targets[name], r * IMAGES, images))
            print(f"round {r + 1}: {rates}", flush=True)
        rebuilt = rebuild(nats.urls, tmp, procs)
        lost = failover(nats, replica_address)
    finally:
        stop(procs)
        nats.stop()
    single_rate, changelog_rate = (float(np.mean(v)) for v in rates.values())
    return {
        "images_per_call": 1,
        "descriptors_per_image": 1000,
        "clients": CLIENTS,
        "images": IMAGES * ROUNDS,
        "single_node_images_per_s": round(single_rate, 1),
        "changelog_images_per_s": round(changelog_rate, 1),
        "ratio": round(changelog_rate / single_rate, 3),
        "rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        **rebuilt,
        "nats_server_lost": lost,
    }


def rebuild(urls: list[str], tmp: Path, procs: list) -> dict:  # noqa: ANN001
    """A replica started on an empty folder (its disk lost): seconds from its start until
    it serves, having applied every image of the stream, with no extraction."""
    from landmark_client import SearchClient

    start = time.perf_counter()
    proc, address = spawn(
        ["search", "--index-dir", str(tmp / "rebuilt"), "--changelog", ",".join(urls)],
        tmp,
        "rebuilt.log",
    )
    seconds = time.perf_counter() - start
    procs.append(proc)
    with SearchClient(address, timeout=30) as client:
        images = client.index_info().images
    print(f"rebuilt {images} images in {seconds:.1f} s", flush=True)
    return {
        "rebuild_images": images,
        "rebuild_seconds": round(seconds, 1),
        "rebuild_images_per_s": round(images / seconds, 1),
    }


def failover(nats, address: str) -> dict:  # noqa: ANN001
    """Adds through the replica while NATS servers are lost: each server killed in turn
    (KILLS times), the first add after the kill and the next; then two servers killed,
    how long an add takes to fail, and with one of them back, how long until adds go on."""
    from landmark_client import ImageToAdd, LandmarkError, SearchClient

    image = features(IMAGES)
    first, then = [], []
    with SearchClient(address, timeout=60) as client:

        def add(image_id: str) -> float:
            start = time.perf_counter()
            client.add_images([ImageToAdd(image_id, "l", image)], on_conflict="replace")
            return time.perf_counter() - start

        for k in range(KILLS * 3):
            victim = k % 3
            add("before")
            nats.kill(victim)
            first.append(add("first"))
            then.append(add("next"))
            nats.start(victim)
            time.sleep(5)  # the restarted server catches up before the next kill
        nats.kill(0)
        nats.kill(1)
        start = time.perf_counter()
        try:
            add("no quorum")
            refused = "OK"
        except LandmarkError as err:
            refused = err.code.name
        refused_after = time.perf_counter() - start
        nats.start(0)
        start = time.perf_counter()
        while time.perf_counter() - start < 120:
            try:
                add("back")
                break
            except LandmarkError:
                time.sleep(0.5)
        resumed_after = time.perf_counter() - start
        nats.start(1)
    print(f"first adds after a server was killed: {[round(x, 2) for x in first]}", flush=True)
    return {
        "kills": len(first),
        "first_add_s": [round(x, 2) for x in first],
        "next_add_s": [round(x, 3) for x in then],
        "two_lost_add": refused,
        "two_lost_add_s": round(refused_after, 1),
        "one_back_adds_resume_s": round(resumed_after, 1),
    }
