"""Measuring searches: the real photos as queries, each excluded from its own search
(leave-one-out), in process and through a gRPC server, by bench/run.py and bench/large.py."""

from __future__ import annotations

import time

import numpy as np

from bench.common import pct


def search_queries(engine, queries, correct: dict[str, bool], params=None) -> dict:  # noqa: ANN001
    """top-1 and latency of ``queries`` ((image id, label, Features)) on ``engine``, with
    ``params`` (SearchParams; default: the service's); whether each was right goes into
    ``correct``."""
    return search_paired(engine, queries, {"run": params}, correct, passes=1)["run"]


def search_paired(engine, queries, runs: dict, correct: dict[str, bool], passes: int = 3) -> dict:  # noqa: ANN001
    """``search_queries`` for each of ``runs`` (name: SearchParams or None for the
    service's) on the same ``engine``, paired: every query is searched once by each run
    in turn (the order rotating from query to query), ``passes`` times over, so that what
    the machine does meanwhile weighs on the runs alike and their ratios compare. Whether
    each query was right (its last pass) goes into ``correct`` for the first run."""
    from search_service.search.search_params import SearchParams

    names = list(runs)
    rows: dict[str, list] = {n: [] for n in names}
    per_candidate: dict[str, list] = {n: [] for n in names}
    turn = 0
    for _ in range(passes):
        for image_id, label, f in queries:
            for k in range(len(names)):
                name = names[(turn + k) % len(names)]
                engine.params = runs[name] or SearchParams()
                # include_rejected: every verified candidate comes back, so their count is
                # known; the best accepted one is still first
                r = engine.search(f, top_k=1000, exclude=[image_id], include_rejected=True)
                ok = r.best is not None and r.best.image.label == label
                rows[name].append((image_id, ok, r.timing))
                if r.candidates:
                    per_candidate[name].append(r.timing.verify_ms / len(r.candidates))
            turn += 1
    engine.params = SearchParams()
    correct.update({image_id: ok for image_id, ok, _ in rows[names[0]][-len(queries) :]})
    return {n: _summary(rows[n][-len(queries) :], rows[n], per_candidate[n]) for n in names}


def _summary(last: list, rows: list, per_candidate: list) -> dict:
    tm = [t for _, _, t in rows]
    return {
        "top1": round(float(np.mean([ok for _, ok, _ in last])), 3),
        "p50_ms": pct([x.total_ms for x in tm], 50),
        "p95_ms": pct([x.total_ms for x in tm], 95),
        "neighbours_ms_p50": pct([x.neighbours_ms for x in tm], 50),
        "matching_ms_p50": pct([x.matching_ms for x in tm], 50),
        "verify_ms_p50": pct([x.verify_ms for x in tm], 50),
        "verify_ms_per_candidate_p50": pct(per_candidate, 50),
        "searches": len(rows),
    }


def grpc_latency(engine, index_dir: str, queries) -> dict:  # noqa: ANN001
    """The same searches through a search server on loopback, with the SDK."""
    from landmark_client import SearchClient
    from search_service.config import SearchConfig
    from search_service.server import create_server

    server, port, _ = create_server(
        SearchConfig(port=0, metrics_port=0, index_dir=index_dir), engine=engine
    )
    lat, server_ms = [], []
    with SearchClient(f"127.0.0.1:{port}", timeout=120) as client:
        for image_id, _, f in queries:
            t = time.perf_counter()
            r = client.search(f, top_k=10, exclude=[image_id])
            lat.append((time.perf_counter() - t) * 1e3)
            server_ms.append(r.timing.total_ms)
    server.stop(0)
    overhead = np.array(lat) - np.array(server_ms)
    return {
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "serialization_and_transport_ms_p50": pct(overhead, 50),
        "share_of_search_p50": round(float(np.median(overhead / lat)), 3),
    }


def shortlist_recall(engine, queries) -> dict:  # noqa: ANN001
    """Where the right images rank in the shortlist the engine's first stage chooses (words,
    or votes where there are none): the share of queries with a photo of their landmark in
    it ("recall"), the share of their landmark's photos it holds, at most its length
    ("held"), and the mean position of the first such photo when there is one."""
    from collections import Counter

    from search_service.search.shortlist import first_stage
    from search_service.search.votes import combine

    view, p = engine.store.view, engine.params
    per_label = Counter(view.images[i].label for i in view.by_id.values())
    name = lambda i: view.images[i].image_id  # noqa: E731
    found, held, first = [], [], []
    for image_id, label, f in queries:
        skip = np.array([view.by_id[image_id]], np.int64)
        words, hits = first_stage(view, f, p, p.shortlist, skip)
        chosen, _ = combine(words, hits, len(view.images), p.shortlist, p.min_votes, name)
        right = [n for n, i in enumerate(chosen) if view.images[i].label == label]
        relevant = min(per_label[label] - 1, p.shortlist)
        found.append(bool(right))
        held.append(len(right) / relevant if relevant else 1.0)
        if right:
            first.append(right[0] + 1)
    return {
        "length": p.shortlist,
        "recall": round(float(np.mean(found)), 3),
        "held": round(float(np.mean(held)), 3),
        "first_position_mean": round(float(np.mean(first)), 2) if first else None,
    }
