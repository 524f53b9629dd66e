"""The one backoff every retry uses (landmark/backoff.py): background steps of the index,
extractor replicas of an ingest, an ingest's sends, and the SDK's calls."""

import pytest

from landmark.backoff import Backoff, doubling, jittered
from landmark.connection import Connection


def test_the_pause_doubles_after_each_failure_up_to_the_longest():
    backoff = Backoff(0.5, 30.0)
    assert not backoff.failing
    assert [backoff.failed() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.failing


def test_a_success_starts_it_again_from_the_first_pause():
    backoff = Backoff(0.5, 30.0)
    backoff.failed(), backoff.failed()
    backoff.succeeded()
    assert not backoff.failing and backoff.failed() == 0.5


def test_jitter_spreads_a_pause_over_half_to_one_and_a_half_of_it():
    pauses = [jittered(2.0) for _ in range(2000)]
    assert 1.0 <= min(pauses) < 1.1 and 2.9 < max(pauses) < 3.0


@pytest.mark.parametrize("attempt, base", [(0, 0.05), (1, 0.1), (3, 0.4)])
def test_a_call_retries_after_the_doubling_pause_with_jitter(attempt, base):
    delays = [Connection(backoff=0.05).delay(attempt) for _ in range(500)]
    assert doubling(0.05, attempt + 1) == pytest.approx(base)
    assert base * 0.5 <= min(delays) and max(delays) < base * 1.5
