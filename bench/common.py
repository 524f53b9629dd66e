"""Where the bench finds its data and writes its results, how it reports percentiles, and
how it starts and stops the services it measures."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "landmarks").resolve()
RESULTS = ROOT / "bench" / "results"


def pct(values, q) -> float:  # noqa: ANN001
    return round(float(np.percentile(values, q)), 2) if len(values) else float("nan")


def peak_rss_mib() -> int:
    """This process's peak resident memory so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def feature_difference(pairs) -> dict:  # noqa: ANN001
    """How far two extractions of the same photos are apart: ``pairs`` of features (each
    with ``locations`` [N, 2] and ``descriptors`` [N, D]). Keypoints are paired with their
    nearest; the sets are the same when every keypoint pairs with a different one."""
    moved = differs = 0.0
    same, photos = True, 0
    for a, b in pairs:
        photos += 1
        if not len(a.locations) or len(a.locations) != len(b.locations):
            same = False
            continue
        distance = np.linalg.norm(a.locations[:, None] - b.locations[None], axis=2)
        nearest = distance.argmin(axis=1)
        same &= len(set(nearest)) == len(nearest)
        moved = max(moved, float(distance.min(axis=1).max()))
        differs = max(differs, float(np.abs(a.descriptors - b.descriptors[nearest]).max()))
    return {
        "photos": photos,
        "same_keypoint_sets": bool(same),
        "largest_keypoint_move_px": round(moved, 6),
        "largest_descriptor_difference": round(differs, 6),
    }


def spawn(args: list[str], folder: Path, name: str):  # noqa: ANN201
    from landmark_client.local import spawn_service

    return spawn_service([*args, "--port", "0", "--metrics-port", "-1"], folder / name)


def stop(procs) -> None:  # noqa: ANN001
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
