"""Leave-one-out over the real landmark photos in ../shared/data/landmarks."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_leave_one_out_top1_over_real_landmarks(landmarks_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "landmark_client.cli", "eval", str(landmarks_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    print(json.dumps({k: v for k, v in report.items() if k != "per_landmark"}, indent=1))
    assert report["queries"] == 79  # the 16 distractors are indexed and queried too
    assert report["distractor_queries"] == 16
    assert report["top1"] >= 0.75
    assert report["false_accepts"] <= 1
    assert report["wrong"] <= 3  # misses should be "no match", not confident wrong answers
