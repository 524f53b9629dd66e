"""Leave-one-out over the real landmark photos in ../shared/data/landmarks."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# What each backend must reach (measured on the 2-core development machine: docs/quality.md),
# with a query or two of slack where a figure sits above its target.
TARGETS = {
    "aliked": {"top1": 0.92, "easy_medium": 0.98, "map": 0.88, "half_top1": 0.89},
    "sift": {"top1": 0.86, "easy_medium": 0.95, "map": 0.68, "half_top1": 0.8},
}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def report(request, landmarks_dir, tmp_path_factory):
    plot = tmp_path_factory.mktemp("eval") / "pr.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark_client.cli",
            "eval",
            str(landmarks_dir),
            "--json",
            "--groups",
            str(REPO / "bench" / "landmark_groups.json"),
            "--pr-plot",
            str(plot),
            "--backend",
            request.param,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    print(
        json.dumps(
            {k: v for k, v in out.items() if k not in ("per_landmark", "pr_curve")}, indent=1
        )
    )
    out["plot"] = plot
    out["targets"] = TARGETS[request.param]
    return out


def test_leave_one_out_over_real_landmarks(report):
    assert report["queries"] == 79  # the 16 distractors are indexed and queried too
    assert report["distractor_queries"] == 16
    targets = report["targets"]
    assert report["top1"] >= targets["top1"]
    assert report["map"] >= targets["map"]
    assert report["wrong"] <= 1  # misses should be "no match", not confident wrong answers
    groups = report["groups"]
    assert set(groups) == {"easy", "medium", "hard"}
    right = sum(groups[g]["top1"] * groups[g]["queries"] for g in ("easy", "medium"))
    easy_medium = right / (groups["easy"]["queries"] + groups["medium"]["queries"])
    assert easy_medium >= targets["easy_medium"]


def test_open_set_answers_no_match(report):
    assert report["false_accepts"] <= 1
    assert report["open_set"]["left_out_queries"] == 79
    assert report["open_set"]["false_accept_rate"] <= 0.05


def test_second_protocol_and_plot(report):
    half = report["half_protocol"]
    assert half["queries"] > 30 and half["top1"] >= report["targets"]["half_top1"]
    assert report["plot"].stat().st_size > 5000
    recalls = [r["recall"] for r in report["pr_curve"]]
    assert recalls == sorted(recalls, reverse=True)  # thresholds ascend, recall falls
