"""Dynamic batching: concurrent photos of one size run as one batch, and a batch gives
exactly the features each photo gets alone (the real aliked graph on the CPU)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from extractor_service.backends import create_backend
from extractor_service.backends.aliked import AlikedBackend, AlikedSettings
from extractor_service.batching import BatchedBackend, Batcher, Expired
from extractor_service.resize import resize_to_fit
from tests.conftest import sample_photo

NAMES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


@pytest.fixture(scope="module")
def aliked():
    return create_backend("aliked")


def same_size_photos() -> list[np.ndarray]:
    from PIL import Image

    out = []
    for name in NAMES:
        with Image.open(sample_photo(name)) as img:
            out.append(np.asarray(img.convert("RGB").resize((320, 256))))
    return out


def assert_same(a, b):
    assert len(a.locations) == len(b.locations) > 50
    np.testing.assert_allclose(a.locations, b.locations, atol=1e-4)
    np.testing.assert_allclose(a.strengths, b.strengths, atol=1e-5)
    np.testing.assert_allclose(a.descriptors, b.descriptors, atol=1e-5)


def test_a_batch_gives_each_photo_its_own_features(aliked):
    photos = same_size_photos()
    alone = [aliked.extract(p, 400) for p in photos]
    together = aliked.extract_batch(photos, 400, aliked.settings.threshold)
    for a, b in zip(alone, together, strict=True):
        assert_same(a, b)
    # the photos differ, so a batch that mixed them up would fail above
    assert not np.allclose(alone[0].locations[:10], alone[1].locations[:10])
    with pytest.raises(ValueError, match="one size"):
        aliked.extract_batch([photos[0], photos[0][:200]], 400, 0.2)


def test_the_numpy_head_path_gives_the_same_features(aliked):
    previous = AlikedBackend(AlikedSettings(head="numpy"))
    photo, _, _ = resize_to_fit(same_size_photos()[0], 512, True)
    assert_same(aliked.extract(photo, 500), previous.extract(photo, 500))


def test_concurrent_calls_of_one_size_run_as_one_batch(aliked):
    backend = BatchedBackend(aliked, max_batch=4, max_delay=10.0)
    photos = same_size_photos()
    with ThreadPoolExecutor(4) as pool:
        batched = list(pool.map(lambda p: backend.extract(p, 400), photos))
    assert backend.batcher.batches == {4: 1}  # full before the 10 s delay ran out
    for photo, got in zip(photos, batched, strict=True):
        assert_same(aliked.extract(photo, 400), got)
    with pytest.raises(ValueError, match="score_threshold"):
        backend.extract(photos[0], 400, score_threshold=2.0)
    backend.batcher.close()


def test_a_lone_call_waits_no_longer_than_the_delay():
    """It runs alone once the delay has passed (a backend that answers at once, so that
    the wait is the batcher's alone)."""
    ran_at: list[float] = []

    def run(images, max_features, threshold):
        ran_at.append(time.monotonic())
        return [max_features] * len(images)

    batcher = Batcher(run, max_batch=8, max_delay=0.3)
    start = time.monotonic()
    assert batcher.submit(np.zeros((4, 4, 3), np.uint8), 5, 0.2) == 5
    assert 0.3 <= ran_at[0] - start < 0.4
    assert batcher.batches == {1: 1}
    batcher.close()


def test_different_sizes_and_options_never_share_a_batch():
    seen = []

    def run(images, max_features, threshold):
        seen.append((len(images), images[0].shape, max_features))
        return [(im.shape, max_features) for im in images]

    batcher = Batcher(run, max_batch=8, max_delay=0.5)
    small, large = np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    calls = [(small, 10), (large, 10), (small, 10), (small, 20)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: batcher.submit(c[0], c[1], 0.2), calls))
    assert got == [((4, 4, 3), 10), ((8, 8, 3), 10), ((4, 4, 3), 10), ((4, 4, 3), 20)]
    assert sorted(seen) == [(1, (4, 4, 3), 20), (1, (8, 8, 3), 10), (2, (4, 4, 3), 10)]
    batcher.close()


def test_an_error_reaches_every_caller_of_the_batch_and_the_batcher_goes_on():
    fail = threading.Event()
    fail.set()

    def run(images, max_features, threshold):
        if fail.is_set():
            raise RuntimeError("the device went away")
        return [max_features] * len(images)

    batcher = Batcher(run, max_batch=2, max_delay=5.0)
    image = np.zeros((4, 4, 3), np.uint8)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, image, 7, 0.2) for _ in range(2)]
        for f in futures:
            with pytest.raises(RuntimeError, match="device went away"):
                f.result()
    fail.clear()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: batcher.submit(image, 7, 0.2), range(2))) == [7, 7]
    assert batcher.batches == {2: 2}
    batcher.close()


def test_a_backend_answering_for_too_few_photos_fails_its_batch_not_the_batcher():
    short = threading.Event()
    short.set()

    def run(images, max_features, threshold):
        return [max_features] * (len(images) - 1 if short.is_set() else len(images))

    batcher = Batcher(run, max_batch=2, max_delay=5.0)
    image = np.zeros((4, 4, 3), np.uint8)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, image, 7, 0.2) for _ in range(2)]
        for f in futures:
            with pytest.raises(RuntimeError, match="1 results for 2 photos"):
                f.result(timeout=10)
    short.clear()
    with ThreadPoolExecutor(2) as pool:
        got = pool.map(lambda _: batcher.submit(image, 7, 0.2), range(2), timeout=10)
        assert list(got) == [7, 7]
    batcher.close()


def test_a_queued_photo_whose_deadline_passes_is_dropped_unrun():
    busy, seen = threading.Event(), []

    def run(images, max_features, threshold):
        seen.append(max_features)
        if max_features == 1:
            busy.wait(10)  # the device is busy with the first batch
        return [max_features] * len(images)

    batcher = Batcher(run, max_batch=1, max_delay=0.0)
    image = np.zeros((4, 4, 3), np.uint8)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.submit, image, 1, 0.2)
        time.sleep(0.2)  # the first batch is running
        start = time.monotonic()
        with pytest.raises(Expired):
            batcher.submit(image, 2, 0.2, deadline=start + 0.3)
        assert time.monotonic() - start < 1.0  # answered at its deadline, not after the batch
        busy.set()
        assert first.result(timeout=10) == 1
    assert batcher.submit(image, 3, 0.2, deadline=time.monotonic() + 10) == 3
    assert seen == [1, 3]  # the expired photo never reached the backend
    batcher.close()


def test_a_backend_without_batches_is_refused():
    with pytest.raises(ValueError, match="cannot run batches"):
        BatchedBackend(create_backend("sift"), max_batch=4, max_delay=0.01)
