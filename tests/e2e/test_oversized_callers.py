"""Oversized requests from callers without a token do not grow the search process: they
are refused from their headers, before the body is read (a real server process)."""

import signal
from concurrent.futures import ThreadPoolExecutor

import grpc

from tests.e2e.test_disk_full import rss_mib
from tests.e2e.test_durability import start


def test_oversized_unauthenticated_requests_keep_memory_bounded(tmp_path):
    proc, address = start(tmp_path / "index", LANDMARK_READ_TOKENS="read-token-0123")
    try:
        before = rss_mib(proc.pid)
        body = b"\0" * (200 << 20)  # 200 MB, under the 256 MiB message limit
        with grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", 512 << 20)]
        ) as channel:
            search = channel.unary_unary("/landmark.v1.Search/Search")

            def call(_):
                try:
                    search(body, timeout=60)
                except grpc.RpcError as err:
                    return err.code()

            with ThreadPoolExecutor(6) as pool:
                codes = list(pool.map(call, range(6)))
        after = rss_mib(proc.pid)
        print(f"\nsearch RSS {before:.0f} -> {after:.0f} MiB after 6 x 200 MB refused")
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 6
        assert after - before < 100
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
