"""Two evaluations of the same photos give the same figures: segment files are the same
byte for byte, and an evaluation queries only once the index has settled (its buffer
sealed, its merges done), so no answer depends on when its query came."""

import pytest

from landmark_client import ExtractorClient, SearchClient
from landmark_client.evaluation import evaluate_features
from landmark_client.gallery import scan
from search_service.config import SearchConfig
from search_service.server import create_server

PHOTOS = 36  # of the shared landmark photos
VARYING = ("latency_ms_p50", "latency_ms_p95")  # time, not the answers


@pytest.fixture(scope="module")
def gallery(landmarks_dir, extractor_server):
    images = scan(landmarks_dir)[::3][:PHOTOS]
    with ExtractorClient(extractor_server, timeout=120) as extractor:
        items = extractor.extract_many((g.image_id, g.path) for g in images)
        features = {item.request_id: item.features for item in items}
    return images, features


def evaluate_once(tmp_path, name, gallery):
    images, features = gallery
    # the photos go through the growing buffer, sealed a second after they came: queried
    # before that, a search would read the buffer (exact), after it the segment (Annoy)
    config = SearchConfig(
        port=0,
        metrics_port=-1,
        index_dir=str(tmp_path / name),
        seal_descriptors=1_000_000,
        seal_seconds=1.0,
    )
    server, port, engine = create_server(config)
    settled_when_queried = []
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=120) as search:
            first_search = search.search

            def search_and_note(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                if not settled_when_queried:
                    settled_when_queried.append(engine.index.settled())
                return first_search(*args, **kwargs)

            search.search = search_and_note  # type: ignore[method-assign]
            report = evaluate_features(search, images, features)
            info = search.index_info()
    finally:
        server.stop(0)
        engine.close()
    assert settled_when_queried == [True]
    assert info.settled and info.growing_descriptors == 0 and info.segments == 1
    return {k: v for k, v in report.items() if k not in VARYING}, info


def test_two_evaluations_of_the_same_photos_give_the_same_figures(tmp_path, gallery):
    first, info = evaluate_once(tmp_path, "one", gallery)
    second, again = evaluate_once(tmp_path, "two", gallery)
    assert first["queries"] > 20 and info.images == len(gallery[1])
    assert second == first
    assert (again.segments, again.descriptors) == (info.segments, info.descriptors)


WAITER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (test_cli)
from landmark_client import SearchClient
from landmark_client.evaluation import wait_settled
print("waiting", flush=True)
try:
    wait_settled(SearchClient(sys.argv[1]), timeout=60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_ends_the_wait_for_the_index_to_settle(tmp_path, gallery):
    """An index that will not settle for an hour (idle merges wait that long): Ctrl-C
    stops the wait at once."""
    import signal
    import subprocess
    import sys
    import time

    from landmark_client import ImageToAdd

    images, features = gallery
    config = SearchConfig(
        port=0,
        metrics_port=-1,
        index_dir=str(tmp_path / "i"),
        seal_descriptors=500,  # each photo's add is written as a segment of its own
        idle_merge_seconds=3600,
    )
    server, port, engine = create_server(config)
    try:
        with SearchClient(f"127.0.0.1:{port}") as search:
            for g in images[:2]:  # two bulk adds: two segments an idle merge would join
                search.add_images([ImageToAdd(g.image_id, g.label, features[g.image_id])])
            info = search.index_info()
            assert info.segments == 2 and not info.settled
        for _ in range(3):
            waiter = subprocess.Popen(
                [sys.executable, "-c", WAITER, f"127.0.0.1:{port}"], stdout=subprocess.PIPE
            )
            waiter.stdout.readline()
            time.sleep(0.5)
            waiter.send_signal(signal.SIGINT)
            assert waiter.wait(timeout=10) == 130
            waiter.stdout.close()
    finally:
        server.stop(0)
        engine.close()
