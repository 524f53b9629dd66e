"""``python -m search_service`` (or ``landmark-search``): run the search service."""

from __future__ import annotations

import sys

from serving.launch import Started, main

from .config import SearchConfig
from .errors import IndexCorrupt, IndexLocked


def start(config: SearchConfig) -> Started:
    from .server import create_server

    running, port, engine = create_server(config)
    # close: flushes and closes the write-ahead log, stops the sealer, releases the lock
    return Started(running, port, close=engine.close)


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
