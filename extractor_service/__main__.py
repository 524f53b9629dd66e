"""``python -m extractor_service`` (or ``landmark-extractor``): run the extractor service."""

from __future__ import annotations

import sys
import threading

from serving.launch import Started, main

from .config import ExtractorConfig


def start(config: ExtractorConfig) -> Started:
    from .server import create_server

    running, port, servicer = create_server(config, wait=False)

    def ready(stop: threading.Event) -> str | None:
        while not servicer.ready.wait(0.2):
            if stop.is_set():
                return None
        if servicer.load_error is not None:
            return f"the {config.backend} backend failed to load: {servicer.load_error}"
        return None

    return Started(running, port, ready=ready)


def run(argv: list[str] | None = None) -> int:
    return main(
        ExtractorConfig,
        start,
        "landmark-extractor",
        "The feature extractor service: photos in, keypoints and descriptors out.",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(run())
