"""Run a service from the command line: flags derived from its settings class, then serve
until SIGTERM or SIGINT.

``python -m extractor_service``, ``python -m search_service`` and
``python -m search_service.coordinator`` (console scripts ``landmark-extractor``,
``landmark-search`` and ``landmark-coordinator``) all start here. Once listening, a service
prints ``LISTENING host:port`` on stdout (the local-services helper waits for that line).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from landmark import READY_PREFIX

from . import logs, memory
from .config import ServingConfig
from .runtime import Running
from .settings import load, parse

log = logging.getLogger("landmark")


METAVARS = {int: "N", float: "X", bool: "{true,false}", tuple[str, ...]: "A,B,..."}


@dataclass
class Started:
    """A service that is listening: its server and port; ``ready`` blocks until it can
    answer (None = at once) and returns (or raises, for a startup error) why it cannot, if
    it never will; ``close`` runs after the server has stopped (e.g. flushing an index)."""

    running: Running
    port: int
    ready: Callable[[threading.Event], str | None] | None = None
    close: Callable[[], None] | None = None


def describe(value: Any) -> str:
    """A default as the help text and the README show it."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value) if value != "" else '""'


def build_parser(config_class: type, prog: str, description: str) -> argparse.ArgumentParser:
    """One ``--field-name`` flag per setting (except environment-only ones), its help text
    naming the default and the environment variable, both read from the field."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        if not f.metadata.get("flag", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]

        def convert(raw: str, kind: Any = kind, flag: str = flag) -> Any:
            try:
                return parse(raw, kind, flag)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parser.add_argument(
            flag,
            dest=f.name,
            type=convert,
            metavar=METAVARS.get(kind, "TEXT"),
            help=f"{f.metadata.get('help', '')} (default: {describe(f.default)}; "
            f"env {f.metadata['env']})",
        )
    return parser


def main(
    config_class: type[ServingConfig],
    start: Callable[[Any], Started],
    prog: str,
    description: str,
    startup_errors: tuple[type[Exception], ...] = (),
    argv: list[str] | None = None,
) -> int:
    """Parse the flags, start the service with ``start(config)``, serve until told to stop,
    stop gracefully. Bad settings, a busy port or an unusable index exit with status 2 and
    one line saying what to fix."""
    args = build_parser(config_class, prog, description).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        config = load(config_class, vars(args))
        logs.configure(config.log_format)
        memory.bound_malloc_arenas()
        memory.start_trimming()
        started = start(config)
    except (ValueError, OSError, *startup_errors) as exc:  # type: ignore[misc]
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{READY_PREFIX}{config.bind_host}:{started.port}", flush=True)
    if started.ready is not None:
        try:
            problem = started.ready(stop)
        except (ValueError, OSError, *startup_errors) as exc:  # type: ignore[misc]
            print(f"{prog}: error: {exc}", file=sys.stderr)
            started.running.stop(0)
            return 2
        if problem is not None:
            print(f"{prog}: error: {problem}", file=sys.stderr)
            started.running.stop(0)
            return 1
    stop.wait()
    log.info(
        "stopping: health NOT_SERVING, finishing calls in progress (grace %.1fs)",
        config.grace_seconds,
    )
    started.running.stop(config.grace_seconds).wait()
    if started.close is not None:
        started.close()
    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is closed; exit without waiting on gRPC's worker threads at interpreter
    # teardown, which can hang now and then (grpc/grpc#40834).
    os._exit(0)
