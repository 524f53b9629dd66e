"""An add whose acknowledgement is lost is sent again; the resend must not turn the
photos it added into a conflict, whatever on_conflict the caller chose."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from landmark.wire import Features
from landmark_client import LandmarkError, SearchClient
from landmark_client.adding import Adder, Job
from landmark_client.types import Photo


class AckLost:
    """A real search client whose first add is applied by the server, and whose answer
    never reaches the caller (UNAVAILABLE), as when the connection drops after the write."""

    def __init__(self, client: SearchClient) -> None:
        self.client, self.sent = client, []

    def add_images(self, images, on_conflict):  # noqa: ANN001, ANN201
        self.sent.append(on_conflict)
        result = self.client.add_images(images, on_conflict=on_conflict)
        if len(self.sent) == 1:
            raise LandmarkError(grpc.StatusCode.UNAVAILABLE, "connection reset after the write")
        return result


def _features(seed: int) -> Features:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(64, 128)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = rng.uniform(0, 400, (64, 2)).astype(np.float32)
    return Features("sift", loc, d, (400, 400))


@pytest.mark.parametrize("on_conflict", ["error", "skip", "replace"])
def test_a_resend_after_a_lost_acknowledgement_is_idempotent(search_server, on_conflict, tmp_path):
    fatal: list = []
    with SearchClient(search_server, timeout=30) as client:
        lossy = AckLost(client)
        adder = Adder(
            lossy,
            on_conflict,
            added=lambda jobs, n: None,
            failed=lambda job, why: fatal.append(why),
            fatal=lambda err, jobs: fatal.append(err),
            stop=threading.Event(),
        )
        adder.start()
        for n in range(3):
            photo = Photo(f"p{n}", "lm", tmp_path / f"p{n}.jpg")
            adder.put(Job(photo, features=_features(n)))
        adder.finish()
        assert fatal == []
        assert adder.retries == 1 and len(lossy.sent) == 2
        assert sorted(r.image_id for r in client.list_images()) == ["p0", "p1", "p2"]
