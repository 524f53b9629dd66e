"""``python -m search_service.coordinator`` (or ``landmark-coordinator``): run a coordinator."""

from __future__ import annotations

import sys

from serving.launch import Started, main

from .config import CoordinatorConfig


def start(config: CoordinatorConfig) -> Started:
    from .server import create_server

    running, port, servicer = create_server(config)
    return Started(running, port, close=servicer.shards.close)


def run(argv: list[str] | None = None) -> int:
    return main(
        CoordinatorConfig,
        start,
        "landmark-coordinator",
        "One landmark.v1.Search endpoint over several search shards.",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(run())
