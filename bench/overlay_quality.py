"""`make overlay-quality`: what overlays do to the answers, with the service's defences off
and on, in one run (bench/results/overlays.json).

Every photo of ../shared/data/landmarks is extracted (aliked, in process) as it is and with
each overlay of bench/overlays.py drawn on it at its own size. Then, per overlay kind and
per setting ("off": the fit as it is; "on": the defaults, frame-locked fits peeled off
(search_service/overlays.py); "on+shared": also an inlier keypoint shared by verified
candidates of L landmarks counting 1/L, SearchParams.weigh_shared_inliers):

- ``pairwise``: every ordered pair of photos of different landmarks (a distractor with any
  photo), both carrying the overlay, compared as ``landmark match`` compares them (exact
  matching and verification, no index): how many pairs reach the acceptance threshold;
- ``gallery``: one index where a third of the photos (every third by id) carry the overlay,
  queried as ``landmark eval`` queries it: leave-one-out top-1, mAP, wrong answers, and the
  open-set false accepts (distractors, and each landmark photo with its landmark left out);
- ``queries``: the clean index, queried with each landmark photo carrying the overlay (its
  clean copy left out): top-1 against the clean queries' in the same index.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench import overlays
from bench.common import DATA, RESULTS
from bench.machine import describe

SETTINGS = ("off", "on", "on+shared")


def extract_all(kinds: tuple[str, ...]) -> tuple[list, dict]:
    from extractor_service.backends import create_backend
    from extractor_service.extractor import FeatureExtractor, Limits
    from landmark_client.gallery import scan

    photos = scan(DATA)
    extractor = FeatureExtractor(create_backend("aliked"), Limits())
    features: dict[str, dict] = {kind: {} for kind in ("clean", *kinds)}
    start = time.perf_counter()

    def one(n: int) -> None:
        image = np.asarray(Image.open(photos[n].path).convert("RGB"))
        for kind in features:
            drawn = image if kind == "clean" else overlays.apply(kind, image, n)
            features[kind][photos[n].image_id] = extractor.extract(overlays.jpeg(drawn)).features

    with ThreadPoolExecutor(2) as pool:  # two at once, as the service runs them
        for done, _ in enumerate(pool.map(one, range(len(photos))), 1):
            print(f"\rextracted {done}/{len(photos)} photos", end="", flush=True)
    print(f" in {time.perf_counter() - start:.0f} s")
    return photos, features


def params_for(setting: str):  # noqa: ANN201
    from search_service.search.search_params import SearchParams, VerifyParams

    return SearchParams(
        verify=VerifyParams(peel_overlays=setting != "off"),
        weigh_shared_inliers=setting == "on+shared",
    )


def pairwise(photos: list, features: dict, setting: str) -> dict:
    from search_service.search.searching import compare

    params = params_for(setting)
    pairs = [
        (a.image_id, b.image_id)
        for a in photos
        for b in photos
        if a.image_id != b.image_id and (a.label != b.label or a.label == "distractor")
    ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: compare(features[p[0]], features[p[1]], params), pairs))
    accepted = [r.inliers for r in results if r.match]
    return {
        "pairs": len(pairs),
        "accepted": len(accepted),
        "most_inliers": max((r.inliers for r in results), default=0),
    }


def _index(entries: list, tmp: Path, setting: str):  # noqa: ANN202
    from search_service.engine import SearchEngine

    engine = SearchEngine(tmp / setting, params_for(setting), background=False)
    engine.add(entries)
    engine.index.sealer.seal()
    return engine


def gallery(photos: list, chosen: dict, tmp: Path, setting: str) -> dict:
    """``landmark eval``'s figures (evaluate_features, through a real search server on
    loopback) over one index of ``chosen`` features (image id -> Features)."""
    from landmark_client import SearchClient
    from landmark_client.evaluation import evaluate_features
    from search_service.config import SearchConfig
    from search_service.engine import SearchEngine
    from search_service.server import create_server

    engine = SearchEngine(tmp, params_for(setting))
    server, port, _ = create_server(
        SearchConfig(port=0, metrics_port=0, index_dir=str(tmp)), engine=engine
    )
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=120) as search:
            report = evaluate_features(search, photos, chosen)
    finally:
        server.stop(0)
        engine.close()
    return {
        "top1": round(report["top1"], 3),
        "map": round(report["map"], 3),
        "wrong": report["wrong"],
        "open_set_false_accept_rate": round(report["open_set"]["false_accept_rate"], 3),
        "left_out_false_accepts": report["open_set"]["left_out_false_accepts"],
        "half_top1": round(report["half_protocol"]["top1"], 3),
    }


def overlaid_queries(photos: list, features: dict, kind: str, tmp: Path, setting: str) -> dict:
    """Top-1 of the landmark photos carrying ``kind`` against the clean index (each one's
    clean copy left out), beside the clean queries' top-1 on the same index."""
    clean = features["clean"]
    engine = _index([(p.image_id, p.label, {}, clean[p.image_id]) for p in photos], tmp, setting)
    queries = [p for p in photos if p.label != "distractor"]

    def right(f, p) -> bool:  # noqa: ANN001
        best = engine.search(f, exclude=[p.image_id]).best
        return best is not None and best.image.label == p.label

    plain = float(np.mean([right(clean[p.image_id], p) for p in queries]))
    drawn = float(np.mean([right(features[kind][p.image_id], p) for p in queries]))
    engine.close()
    return {"clean_top1": round(plain, 3), "overlaid_top1": round(drawn, 3)}


BEGIN = "<!-- overlays table: generated by `make overlay-quality` -->"
END = "<!-- end of overlays table -->"
QUALITY_DOC = Path(__file__).resolve().parents[1] / "docs" / "quality.md"


def table(results: dict) -> str:
    """docs/quality.md's overlay table, from bench/results/overlays.json."""
    lines = [
        BEGIN,
        "| overlay | pairs of different places accepted, off / on | most inliers, off / on "
        "| third overlaid: top-1, off / on | half protocol top-1, off / on "
        "| wrong answers, off / on "
        "| open-set false accepts, off / on | overlaid queries: top-1 (clean top-1), off / on "
        "| with shared inliers weighed: top-1, wrong, false accepts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in results["kinds"].items():
        off, on, shared = row["off"], row["on"], row["on+shared"]
        pairs = off["pairwise"]["pairs"]

        def queries(r: dict) -> str:
            q = r.get("queries")
            return f"{q['overlaid_top1']:.3f} ({q['clean_top1']:.3f})" if q else "-"

        lines.append(
            f"| {kind} | {off['pairwise']['accepted']:,} / {on['pairwise']['accepted']:,} "
            f"of {pairs:,} | {off['pairwise']['most_inliers']} / {on['pairwise']['most_inliers']} "
            f"| {off['gallery']['top1']:.3f} / {on['gallery']['top1']:.3f} "
            f"| {off['gallery']['half_top1']:.3f} / {on['gallery']['half_top1']:.3f} "
            f"| {off['gallery']['wrong']} / {on['gallery']['wrong']} "
            f"| {off['gallery']['open_set_false_accept_rate']:.1%} / "
            f"{on['gallery']['open_set_false_accept_rate']:.1%} "
            f"| {queries(off)} / {queries(on)} "
            f"| {shared['gallery']['top1']:.3f}, {shared['gallery']['wrong']}, "
            f"{shared['gallery']['open_set_false_accept_rate']:.1%} |"
        )
    lines.append(END)
    return "\n".join(lines)


def current(text: str) -> str:
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(overlays.KINDS))
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    photos, features = extract_all(kinds)
    results: dict = {"machine": describe(), "photos": len(photos), "kinds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("clean", *kinds):
            every_third = {
                p.image_id: features[kind if n % 3 == 0 else "clean"][p.image_id]
                for n, p in enumerate(photos)
            }
            row: dict = {}
            for setting in SETTINGS:
                where = Path(tmp) / f"{kind}-{setting}"
                row[setting] = {
                    # a pair is compared alone: shared inliers play no part
                    "pairwise": row["on"]["pairwise"]
                    if setting == "on+shared"
                    else pairwise(photos, features[kind], setting),
                    "gallery": gallery(photos, every_third, where / "gallery", setting),
                }
                if kind != "clean":
                    row[setting]["queries"] = overlaid_queries(
                        photos, features, kind, where / "queries", setting
                    )
            results["kinds"][kind] = row
            print(kind, json.dumps(row))
    out = RESULTS / "overlays.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    text = QUALITY_DOC.read_text()
    QUALITY_DOC.write_text(text.replace(current(text), table(results)))
    print(f"wrote {out} and its table in {QUALITY_DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
