"""Which replicas an address names, and how a failed replica is rested and tried again."""

import socket
import time

from landmark.connection import endpoints
from landmark_client.pool import PAUSE, Replica


def test_a_list_names_each_replica_and_localhost_is_one_host():
    assert endpoints("127.0.0.1:1, 127.0.0.2:2") == [("127.0.0.1:1", None), ("127.0.0.2:2", None)]
    assert endpoints("localhost:5") == [("localhost:5", None)]  # IPv4 and IPv6: one host


def test_a_name_with_several_addresses_is_one_replica_each(monkeypatch):
    # the machine has no DNS name with several A records: the resolver's answer is given
    def resolve(host, port, type=0):  # noqa: A002, ANN001, ANN202
        assert (host, port) == ("extractor.ns.svc", 50051)
        return [
            (socket.AF_INET, type, 6, "", ("10.0.0.7", port)),
            (socket.AF_INET, type, 6, "", ("10.0.0.5", port)),
            (socket.AF_INET6, type, 6, "", ("fd00::5", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert endpoints("extractor.ns.svc:50051") == [
        ("10.0.0.5:50051", "extractor.ns.svc:50051"),
        ("10.0.0.7:50051", "extractor.ns.svc:50051"),
    ]


def test_a_failed_replica_rests_then_takes_one_call_until_one_succeeds():
    r = Replica("a:1", stub=None, window=4)
    assert r.free(time.monotonic()) and not r.on_probation
    r.failed()
    assert not r.free(time.monotonic())  # resting
    later = time.monotonic() + PAUSE[0] + 0.01
    assert r.free(later) and r.on_probation
    r.in_flight = 1
    assert not r.free(later)  # one call at a time on probation
    r.failed()
    assert not r.free(time.monotonic() + PAUSE[0] + 0.01)  # rests twice as long
    r.in_flight = 0
    r.succeeded()
    assert not r.on_probation and r.described == 1
    r.in_flight = 3
    assert r.free(time.monotonic() + 60)  # the whole window again
