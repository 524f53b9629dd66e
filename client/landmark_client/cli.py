"""The `landmark` command: serve, index, query, match, eval, info, remove, demo."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from . import gallery as gallery_mod
from .client import ExtractorClient, LandmarkClient, SearchClient
from .errors import LandmarkError
from .evaluation import NoProgress, evaluate, load_groups
from .local import READY_PREFIX, local_services
from .types import ImageToAdd, SearchResult

log = logging.getLogger("landmark")


def _progress(total: int, desc: str):  # noqa: ANN202
    try:
        from tqdm import tqdm
    except ImportError:  # the SDK alone: no bars
        return NoProgress()
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None)


# -- serve -------------------------------------------------------------------------------


def _flags(args: argparse.Namespace, config_class: type) -> dict:
    """The command-line flags that name a field of ``config_class`` (None = not given)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return {k: v for k, v in vars(args).items() if k in names}


def _serve(args: argparse.Namespace) -> int:
    from serving.settings import load

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if args.service == "extractor":
            from extractor_service.config import ExtractorConfig as Config
        elif args.service == "coordinator":
            from search_service.coordinator import CoordinatorConfig as Config
        else:
            from search_service.config import SearchConfig as Config
        config = load(Config, _flags(args, Config))
        from serving import logs, memory

        logs.configure(config.log_format)
        memory.bound_malloc_arenas()
        memory.start_trimming()
        if args.service == "extractor":
            from extractor_service.server import create_server

            running, port, servicer = create_server(config, wait=False)
        elif args.service == "coordinator":
            from search_service.coordinator import create_server

            running, port, servicer = create_server(config)
        else:
            from search_service.server import create_server

            running, port, servicer = create_server(config)
    except ImportError as exc:
        print(
            f"error: the {args.service} service is not installed here ({exc}); install the "
            "project (`make install`) rather than the SDK alone",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # bad settings, busy port, locked or corrupt index directory
        if type(exc).__name__ not in ("IndexLocked", "IndexCorrupt") and not isinstance(
            exc, (ValueError, OSError)
        ):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{READY_PREFIX}{config.bind_host}:{port}", flush=True)
    if args.service == "extractor":
        while not servicer.ready.wait(0.2):
            if stop.is_set():
                break
        if servicer.load_error is not None:
            print(
                f"error: the {config.backend} backend failed to load: {servicer.load_error}",
                file=sys.stderr,
            )
            running.stop(0)
            return 1
    stop.wait()
    log.info(
        "stopping: health NOT_SERVING, finishing calls in progress (grace %.1fs)",
        config.grace_seconds,
    )
    running.stop(config.grace_seconds).wait()
    if args.service == "search":
        servicer.close()  # flushes and closes the WAL, stops the sealer, releases the lock
    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is closed; exit without waiting on gRPC's worker threads at interpreter
    # teardown, which can hang now and then (grpc/grpc#40834).
    os._exit(0)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run one of the services")
    kinds = serve.add_subparsers(dest="service", required=True)
    common = [
        ("--host", str, "address to bind (default: 127.0.0.1 without TLS, 0.0.0.0 with TLS)"),
        ("--port", int, "port (0 = any free port)"),
        ("--metrics-port", int, "Prometheus /metrics HTTP port (0 = any free, -1 = off)"),
        ("--metrics-host", str, "address the metrics port binds (default: 127.0.0.1)"),
        ("--max-rpcs", int, "calls in progress at once; more get RESOURCE_EXHAUSTED"),
        ("--tls-cert", str, "server certificate, PEM (env LANDMARK_TLS_CERT)"),
        ("--tls-key", str, "server private key, PEM (env LANDMARK_TLS_KEY)"),
        ("--tls-client-ca", str, "CA for client certificates: turns on mutual TLS"),
        ("--log-format", str, "text (default) or json (env LANDMARK_LOG_FORMAT)"),
        ("--grace-seconds", float, "time calls in progress get to finish on SIGTERM (5)"),
    ]
    ex = kinds.add_parser("extractor", help="the feature extractor (env LANDMARK_EXTRACTOR_*)")
    se = kinds.add_parser("search", help="the search service (env LANDMARK_SEARCH_*)")
    co = kinds.add_parser("coordinator", help="one Search endpoint over several search shards")
    for p in (ex, se, co):
        for flag, kind, text in common:
            p.add_argument(flag, type=kind, help=text)
    ex.add_argument(
        "--backend", help="feature backend: aliked (default), sift or delf (env LANDMARK_BACKEND)"
    )
    ex.add_argument(
        "--aliked-variant",
        help="aliked: model variant t16, n16 or n32 (env LANDMARK_ALIKED_VARIANT)",
    )
    ex.add_argument(
        "--aliked-threshold",
        type=float,
        help="aliked: detection score a keypoint needs (env LANDMARK_ALIKED_THRESHOLD)",
    )
    ex.add_argument(
        "--delf-model",
        help="delf: TF-Hub handle or local module folder (env LANDMARK_DELF_MODEL)",
    )
    ex.add_argument("--max-features", type=int, help="default keypoints per image (1000)")
    ex.add_argument(
        "--max-features-limit", type=int, help="most keypoints a request may ask for (10000)"
    )
    ex.add_argument("--max-image-size", type=int, help="default longer side in pixels (1024)")
    ex.add_argument("--max-pixels", type=int, help="largest decoded image, in pixels (40M)")
    ex.add_argument("--max-image-bytes", type=int, help="largest upload in bytes (32 MiB)")
    ex.add_argument("--max-concurrent", type=int, help="extractions running at once (2)")
    se.add_argument("--index-dir", help="index folder (env LANDMARK_INDEX_DIR)")
    se.add_argument("--n-trees", type=int, help="Annoy trees built per index (16)")
    se.add_argument("--search-k", type=int, help="Annoy search_k (0 = automatic)")
    se.add_argument(
        "--min-inliers",
        type=int,
        help="inliers needed for a match (0 = by feature kind: sift 7, aliked 9)",
    )
    se.add_argument("--shortlist", type=int, help="candidates verified per query (20)")
    se.add_argument("--max-top-k", type=int, help="largest top_k and shortlist (1000)")
    se.add_argument("--max-query-features", type=int, help="most features in one search (10000)")
    se.add_argument(
        "--max-add-features", type=int, help="most descriptors in one add request (1000000)"
    )
    se.add_argument("--max-message-mb", type=int, help="largest request in MiB (256)")
    se.add_argument("--shard-index", type=int, help="this shard's number when sharded (-1)")
    co.add_argument(
        "--shards",
        type=lambda v: tuple(a.strip() for a in v.split(",") if a.strip()),
        help="shard addresses in shard order, comma-separated (env LANDMARK_SHARDS)",
    )
    co.add_argument("--shards-dns", help="NAME:PORT resolving to every shard (headless service)")
    co.add_argument("--shard-count", type=int, help="number of shards (with --shards-dns)")
    co.add_argument("--shard-timeout", type=float, help="seconds a shard gets per call (30)")
    for p in (ex, se, co):
        p.set_defaults(func=_serve)


# -- index / query / info / remove -------------------------------------------------------


def index_gallery(folder: str | Path, client: LandmarkClient, batch: int = 16) -> dict:
    """Extract and add every image of a labeled folder not yet in the index."""
    images = gallery_mod.scan(folder)
    present = {r.image_id for r in client.search.list_images()}
    todo = [g for g in images if g.image_id not in present]
    added, failed = 0, []
    pending: list[ImageToAdd] = []

    def flush() -> None:
        nonlocal added
        if pending:
            added += client.search.add_images(pending, on_conflict="skip").added
            pending.clear()

    with _progress(len(todo), "indexing") as bar:
        labels = {g.image_id: g.label for g in todo}
        stream = client.extractor.extract_many(
            ((g.image_id, g.path) for g in todo), timeout=max(60.0, 10.0 * len(todo))
        )
        for item in stream:
            if item.error is not None:
                failed.append({"image_id": item.request_id, "error": str(item.error)})
            else:
                pending.append(ImageToAdd(item.request_id, labels[item.request_id], item.features))
            if len(pending) >= batch:
                flush()
            bar.update(1)
        flush()
    return {
        "found": len(images),
        "already_indexed": len(images) - len(todo),
        "added": added,
        "failed": failed,
    }


def _client(args: argparse.Namespace) -> LandmarkClient:
    return LandmarkClient(args.extractor, args.search, timeout=args.timeout)


def _index(args: argparse.Namespace) -> int:
    with _client(args) as client:
        report = index_gallery(args.dir, client)
        info = client.search.index_info()
    print(
        f"{report['found']} images found, {report['already_indexed']} already indexed, "
        f"{report['added']} added, {len(report['failed'])} failed; the index holds "
        f"{info.images} images ({info.descriptors} descriptors, {info.backend})"
    )
    for f in report["failed"]:
        print(f"  failed: {f['image_id']}: {f['error']}", file=sys.stderr)
    return 1 if report["failed"] else 0


def result_json(result: SearchResult) -> dict:
    return {
        "match": result.match,
        "label": result.label,
        "min_inliers": result.min_inliers,
        "candidates": [
            {
                "image_id": m.image_id,
                "label": m.label,
                "inliers": m.inliers,
                "votes": m.votes,
                "putative_matches": m.putative_matches,
            }
            for m in result.candidates
        ],
        "timing_ms": result.timing.__dict__,
    }


def _query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rec = client.recognize(args.image, top_k=args.top_k)
    if args.json:
        print(json.dumps({"image": args.image, **result_json(rec.result)}, indent=2))
        return 0
    r = rec.result
    print(f"{args.image}: {len(rec.features)} keypoints")
    if not r.match:
        print(f"best guess: no match (no candidate reached {r.min_inliers} inliers)")
    else:
        print(f"best guess: {r.label}  ({r.best.inliers} inliers, {r.best.image_id})")
        print(f"{'rank':>4}  {'inliers':>7}  {'votes':>5}  label / image")
        for i, m in enumerate(r.candidates, 1):
            print(f"{i:>4}  {m.inliers:>7}  {m.votes:>5}  {m.label} / {m.image_id}")
    print(f"search took {r.timing.total_ms:.1f} ms")
    return 0


def _info(args: argparse.Namespace) -> int:
    with SearchClient(args.search, timeout=args.timeout) as client:
        info = client.index_info()
    print(json.dumps(info.__dict__, indent=2))
    return 0


def _remove(args: argparse.Namespace) -> int:
    with SearchClient(args.search, timeout=args.timeout) as client:
        removed, missing = client.remove_images(args.image_ids)
    print(f"removed {removed}; not in the index: {len(missing)}")
    return 0


# -- match -------------------------------------------------------------------------------


@contextlib.contextmanager
def _services(args: argparse.Namespace, need_search: bool = True) -> Iterator[tuple[str, str]]:
    """The addresses given, or local services started for this command."""

    extractor = args.extractor or os.environ.get("LANDMARK_EXTRACTOR")
    search = args.search or os.environ.get("LANDMARK_SEARCH")
    if extractor and (search or not need_search):
        yield extractor, search or ""
        return
    print("starting local services on loopback ...", file=sys.stderr)
    model = getattr(args, "delf_model", None)
    extra = {"extractor": ["--delf-model", model]} if model else {}
    with local_services(getattr(args, "backend", None), extra_args=extra) as addresses:
        yield addresses


def match_images(
    image1: str, image2: str, extractor: str, out: str | Path, timeout: float = 60.0
) -> tuple[int, Path]:
    """Verified correspondences between two photos, drawn side by side.

    Uses a private in-process search engine over a temporary index holding image2, so the
    matching and verification are exactly those of the search service."""
    import tempfile

    from search_service.engine import SearchEngine

    from .drawing import draw_matches

    with ExtractorClient(extractor, timeout=timeout) as ex:
        f1, f2 = ex.extract(image1), ex.extract(image2)
    with tempfile.TemporaryDirectory() as tmp:
        engine = SearchEngine(Path(tmp), threads=1, background=False)
        engine.add([("image2", "image2", {}, f2)])
        result = engine.search(f1, top_k=1, min_inliers=1, include_matches=True)
        engine.close()
    best = result.best
    inliers = best.inliers if best else 0
    p1 = best.query_locations if best else []
    p2 = best.database_locations if best else []
    verdict = "match" if inliers >= result.min_inliers else "no match"
    title = (
        f"{Path(image1).name} <-> {Path(image2).name}: {inliers} inliers "
        f"({verdict}; threshold {result.min_inliers})"
    )
    return inliers, draw_matches(image1, image2, p1, p2, out, title)


def _match(args: argparse.Namespace) -> int:
    with _services(args, need_search=False) as (extractor, _):
        inliers, path = match_images(args.image1, args.image2, extractor, args.out, args.timeout)
    print(f"{inliers} verified correspondences; picture written to {path}")
    return 0


# -- eval --------------------------------------------------------------------------------


def _eval(args: argparse.Namespace) -> int:
    groups = load_groups(args.groups)
    with _services(args) as (extractor, search):
        with LandmarkClient(extractor, search, timeout=args.timeout) as client:
            report = evaluate(args.dir, client, args.distractor_label, groups, _progress)
    if args.pr_plot:
        from .drawing import draw_pr_curve

        draw_pr_curve(report["pr_curve"], args.pr_plot, f"leave-one-out over {args.dir}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"leave-one-out over {args.dir}: {report['queries']} landmark queries")
    print(
        f"  top-1 {report['top1']:.3f} (averaged per landmark {report['top1_per_landmark']:.3f})"
        f"   mAP {report['map']:.3f}   no match {report['no_match']}   wrong {report['wrong']}"
    )
    for name, g in report["groups"].items():
        print(f"  group {name:<8} top-1 {g['top1']:.3f} over {g['queries']} queries")
    o = report["open_set"]
    print(
        f"  open set: distractors accepted {report['false_accepts']} of "
        f"{report['distractor_queries']}; left-out landmarks accepted "
        f"{o['left_out_false_accepts']} of {o['left_out_queries']}; false-accept rate "
        f"{o['false_accept_rate']:.3f}, true-accept rate {o['true_accept_rate']:.3f}"
    )
    h = report["half_protocol"]
    print(
        f"  half protocol (half indexed, half queried): top-1 {h['top1']:.3f} over "
        f"{h['queries']} queries, mAP {h['map']:.3f}"
    )
    print(
        f"  search latency p50 {report['latency_ms_p50']:.1f} ms, "
        f"p95 {report['latency_ms_p95']:.1f} ms"
    )
    print(f"\n  {'landmark':<28} {'n':>3} {'top-1':>6} {'mAP':>6} {'no match':>8}")
    for label, row in report["per_landmark"].items():
        print(
            f"  {label:<28} {row['queries']:>3} {row['top1']:>6.2f} {row['map']:>6.2f} "
            f"{row['no_match']:>8}"
        )
    if args.pr_plot:
        print(f"\n  precision-recall plot: {args.pr_plot}")
    return 0


# -- main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landmark", description="Landmark recognition over gRPC.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)

    def with_addresses(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--extractor", help="extractor address host:port (env LANDMARK_EXTRACTOR)")
        p.add_argument("--search", help="search address host:port (env LANDMARK_SEARCH)")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds per call (60)")
        return p

    p = with_addresses(sub.add_parser("index", help="add a labeled folder of photos"))
    p.add_argument("dir", help="DIR/<label>/<file> or DIR/images/<label>/<file>")
    p.set_defaults(func=_index)
    p = with_addresses(sub.add_parser("query", help="which landmark a photo shows"))
    p.add_argument("image")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_query)
    p = with_addresses(sub.add_parser("match", help="draw the verified matches of two photos"))
    p.add_argument("image1")
    p.add_argument("image2")
    p.add_argument("--out", default="match.png", help="PNG to write (match.png)")
    p.set_defaults(func=_match)
    p = with_addresses(
        sub.add_parser(
            "eval",
            help="leave-one-out accuracy over a labeled folder (starts its own services "
            "unless addresses are given)",
        )
    )
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--backend",
        help="extractor backend of the local services: aliked, sift or delf "
        "(default: the extractor's, env LANDMARK_BACKEND)",
    )
    p.add_argument("--delf-model", help="delf: TF-Hub handle or module folder for local services")
    p.add_argument("--groups", help="JSON file mapping labels or image ids to groups")
    p.add_argument("--pr-plot", help="write the precision-recall curve to this PNG")
    p.add_argument(
        "--distractor-label",
        default="distractor",
        help="label of images that show none of the landmarks",
    )
    p.set_defaults(func=_eval)
    p = with_addresses(sub.add_parser("info", help="size and kind of the index"))
    p.set_defaults(func=_info)
    p = with_addresses(sub.add_parser("remove", help="remove images by id"))
    p.add_argument("image_ids", nargs="+")
    p.set_defaults(func=_remove)
    p = sub.add_parser("demo", help="set up, index a gallery, query it, draw a match, stop")
    p.add_argument(
        "--gallery",
        help="your own labeled folder (default: generated views of "
        "photos shipped with scikit-image)",
    )
    p.add_argument("--out", default="out/demo", help="folder for the demo's outputs")
    p.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.gallery, Path(args.out))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except LandmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
