"""The `landmark` command: index, query, match, eval, info, remove, demo.

Every command talks to running services (addresses from the flags or LANDMARK_EXTRACTOR /
LANDMARK_SEARCH). `eval`, `match` and `demo` start their own local services when no
addresses are given; the services themselves run with `python -m extractor_service` and
`python -m search_service` (or `landmark-extractor` / `landmark-search`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .client import LandmarkClient, SearchClient
from .errors import LandmarkError
from .evaluation import evaluate, load_groups
from .gallery import DISTRACTOR_LABEL, scan
from .indexing import index_gallery
from .local import local_extractor, local_search, local_services
from .progress import progress
from .reports import evaluation_text, result_json


def _client(args: argparse.Namespace) -> LandmarkClient:
    return LandmarkClient(args.extractor, args.search, timeout=args.timeout)


@contextlib.contextmanager
def _services(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """The addresses given (flags or environment), or local services started for this
    command and stopped after it."""
    extractor = args.extractor or os.environ.get("LANDMARK_EXTRACTOR")
    search = args.search or os.environ.get("LANDMARK_SEARCH")
    if extractor and search:
        yield extractor, search
        return
    print("starting local services on loopback ...", file=sys.stderr)
    model = getattr(args, "delf_model", None)
    extra = {"extractor": ["--delf-model", model]} if model else {}
    with local_services(getattr(args, "backend", None), extra_args=extra) as addresses:
        yield addresses


def _index(args: argparse.Namespace) -> int:
    with _client(args) as client:
        report = index_gallery(args.dir, client, args.distractor_label, show_progress=not args.json)
        info = client.search.index_info()
    if args.json:
        print(json.dumps({**report.as_dict(), "index": info.__dict__}, indent=2))
        return 1 if report.failed else 0
    print(
        f"{report.found} photos found, {report.already_indexed} already indexed, "
        f"{report.added} added, {len(report.failed)} failed in {report.seconds:.1f}s "
        f"({report.photos_per_second:.2f} photos/s); the index holds {info.images} images "
        f"({info.descriptors} descriptors, {info.backend})"
    )
    if len(report.described) > 1:
        shares = ", ".join(f"{a}: {n}" for a, n in report.described.items())
        print(f"described per extractor: {shares}")
    if report.distractors:
        print(
            f"{report.distractors} photos labeled {args.distractor_label!r} left out: they show "
            "none of the landmarks (query them to check that they find no match)"
        )
    for image_id, why in report.failed:
        print(f"  failed: {image_id}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def _query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rec = client.recognize(args.image, top_k=args.top_k)
    if args.json:
        print(json.dumps({"image": args.image, **result_json(rec.result)}, indent=2))
        return 0
    r = rec.result
    print(f"{args.image}: {len(rec.features)} keypoints")
    if r.best is None:
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


def _match(args: argparse.Namespace) -> int:
    from .drawing import draw_matches

    with _services(args) as (extractor, search):
        with LandmarkClient(extractor, search, timeout=args.timeout) as client:
            c = client.compare(args.image1, args.image2)
    verdict = "match" if c.match else "no match"
    title = (
        f"{Path(args.image1).name} <-> {Path(args.image2).name}: {c.inliers} inliers "
        f"({verdict}; a search needs {c.min_inliers})"
    )
    path = draw_matches(
        args.image1, args.image2, c.query_locations, c.reference_locations, args.out, title
    )
    print(f"{c.inliers} verified correspondences: {verdict} (a search needs {c.min_inliers})")
    print(f"picture: {path}")
    return 0


@contextlib.contextmanager
def _scratch(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """Services for an evaluation: the extractors given (flag or environment) and a search
    service of its own with a scratch index, removed afterwards; without an extractor,
    local services for both. With --search, that deployment (a search service or a
    coordinator) when its index is empty: what the evaluation added is removed after it,
    on an error or Ctrl-C too."""
    if args.search:
        with _empty_deployment(args) as addresses:
            yield addresses
        return
    if os.environ.get("LANDMARK_SEARCH"):
        print(
            "LANDMARK_SEARCH is not used: eval evaluates in a scratch index of its own",
            file=sys.stderr,
        )
    extractor = args.extractor or os.environ.get("LANDMARK_EXTRACTOR")
    if not extractor:
        with _services(args) as addresses:
            yield addresses
        return
    print("starting a scratch search service on loopback ...", file=sys.stderr)
    with local_search() as search:
        yield extractor, search


@contextlib.contextmanager
def _empty_deployment(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    with SearchClient(args.search, timeout=args.timeout) as search:
        held = search.index_info().images
        if held:
            raise ValueError(
                f"the search service at {args.search} holds {held} images: landmark eval adds "
                "the gallery and removes it after, so it evaluates a deployment only while its "
                "index is empty. Drop --search to evaluate in a scratch index of its own"
            )
        ids = [g.image_id for g in scan(args.dir)]
        extractor = args.extractor or os.environ.get("LANDMARK_EXTRACTOR")
        try:
            if extractor:
                yield extractor, args.search
            else:
                print("starting an extractor on loopback ...", file=sys.stderr)
                with local_extractor(getattr(args, "backend", None)) as started:
                    yield started, args.search
        finally:
            for start in range(0, len(ids), 1000):
                search.remove_images(ids[start : start + 1000])
            print(f"removed the {len(ids)} evaluation photos from {args.search}", file=sys.stderr)


def _eval(args: argparse.Namespace) -> int:
    groups = load_groups(args.groups)
    with _scratch(args) as (extractor, search):
        with LandmarkClient(extractor, search, timeout=args.timeout) as client:
            report = evaluate(args.dir, client, args.distractor_label, groups, progress)
    if args.pr_plot:
        from .drawing import draw_pr_curve

        draw_pr_curve(report["pr_curve"], args.pr_plot, f"leave-one-out over {args.dir}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(evaluation_text(report, args.dir))
    if args.pr_plot:
        print(f"\n  precision-recall plot: {args.pr_plot}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.gallery, Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, func, local: bool = False) -> argparse.ArgumentParser:  # noqa: ANN001
        p = sub.add_parser(name, help=text, description=text)
        when = " (default: start local services)" if local else ""
        p.add_argument("--extractor", help=f"extractor host:port, env LANDMARK_EXTRACTOR{when}")
        p.add_argument("--search", help=f"search host:port, env LANDMARK_SEARCH{when}")
        p.add_argument(
            "--timeout", type=float, default=60.0, help="seconds per call (default: %(default)s)"
        )
        p.set_defaults(func=func)
        return p

    def distractors(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--distractor-label",
            default=DISTRACTOR_LABEL,
            help="label of photos that show none of the landmarks (default: %(default)s)",
        )

    def local_backend(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", help="local services' extractor backend: aliked, sift, delf")
        p.add_argument("--delf-model", help="local services' DELF module (TF-Hub handle or folder)")

    p = command(
        "index",
        "add a labeled folder of photos to the index, through every extractor replica "
        "(--extractor a,b,... or a DNS name); a rerun adds only what is missing",
        _index,
    )
    p.add_argument("dir", help="DIR/<label>/<photo> or DIR/images/<label>/<photo>")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    distractors(p)
    p = command("query", "which landmark a photo shows", _query)
    p.add_argument("image", help="the photo (a file path)")
    p.add_argument("--top-k", type=int, default=5, help="candidates to list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command("match", "draw the verified matches of two photos", _match, local=True)
    p.add_argument("image1", help="the photo asked about")
    p.add_argument("image2", help="the photo it is compared with")
    p.add_argument("--out", default="match.png", help="PNG to write (default: %(default)s)")
    local_backend(p)
    p = command(
        "eval",
        "leave-one-out accuracy over a labeled folder, in a scratch index of its own "
        "(with the extractors given, or local services); --search: in that deployment "
        "(a search service or a coordinator) while its index is empty, cleaned after",
        _eval,
        local=True,
    )
    p.add_argument("dir", help="DIR/<label>/<photo> or DIR/images/<label>/<photo>")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--groups", help="JSON file mapping labels or image ids to groups")
    p.add_argument("--pr-plot", help="write the precision-recall curve to this PNG")
    distractors(p)
    local_backend(p)
    command("info", "size and kind of the index", _info)
    p = command("remove", "remove images by id", _remove)
    p.add_argument("image_ids", nargs="+", help="image ids, as `landmark index` named them")
    p = sub.add_parser(
        "demo", help="start local services, index a gallery, query it, draw a match, stop"
    )
    p.add_argument(
        "--gallery",
        help="your own labeled folder, queried leave-one-out (default: generated views of "
        "photos shipped with scikit-image)",
    )
    p.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except LandmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
