"""Leave-one-out over the real landmark photos in ../shared/data/landmarks."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(landmarks_dir, tmp_path_factory):
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
    return out


def test_leave_one_out_over_real_landmarks(report):
    assert report["queries"] == 79  # the 16 distractors are indexed and queried too
    assert report["distractor_queries"] == 16
    # Measured 0.886 (70 of 79) on the development machine; two queries of slack.
    assert report["top1"] >= 0.86
    assert report["wrong"] <= 1  # misses should be "no match", not confident wrong answers
    groups = report["groups"]
    assert set(groups) == {"easy", "medium", "hard"}
    # Issue 4's target for the easy and medium groups together (measured 66 of 69).
    right = sum(groups[g]["top1"] * groups[g]["queries"] for g in ("easy", "medium"))
    assert right / (groups["easy"]["queries"] + groups["medium"]["queries"]) >= 0.95


def test_open_set_answers_no_match(report):
    assert report["false_accepts"] <= 1
    assert report["open_set"]["left_out_queries"] == 79
    assert report["open_set"]["false_accept_rate"] <= 0.05


def test_second_protocol_and_plot(report):
    half = report["half_protocol"]
    assert half["queries"] > 30 and half["top1"] >= 0.8  # measured 0.842
    assert report["plot"].stat().st_size > 5000
    recalls = [r["recall"] for r in report["pr_curve"]]
    assert recalls == sorted(recalls, reverse=True)  # thresholds ascend, recall falls
