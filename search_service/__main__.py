"""``python -m search_service`` (or ``landmark-search``): run the search service."""

from __future__ import annotations

import sys
import threading

from serving.launch import Started, main

from .config import SearchConfig
from .errors import IndexCorrupt, IndexLocked


def start(config: SearchConfig) -> Started:
    from .server import start_server

    running, port, loading = start_server(config)

    def ready(stop: threading.Event) -> str | None:
        while not loading.done.wait(0.2):
            if stop.is_set():
                return None
        if loading.error is not None:
            raise loading.error  # IndexCorrupt, IndexLocked: exit 2 with the reason
        return None

    def close() -> None:
        # flushes and closes the write-ahead log, stops the sealer, releases the lock
        loading.done.wait()
        if loading.writes is not None:  # stops following the changelog first
            loading.writes.close()
        if loading.engine is not None:
            loading.engine.close()

    return Started(running, port, ready=ready, close=close)


def run(argv: list[str] | None = None) -> int:
    return main(
        SearchConfig,
        start,
        "landmark-search",
        "The search service: an index of database images and verified search over it.",
        startup_errors=(IndexCorrupt, IndexLocked),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(run())
