"""`landmark demo` runs offline from start to finish."""

import subprocess
import sys


def test_demo(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "landmark_client.cli", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SYNTHETIC" in proc.stdout
    assert "11 of 11 answers correct" in proc.stdout
    assert "services stopped" in proc.stdout
    # the README's picture is this one (`make demo-picture` copies it): the same query and
    # database photo side by side; only the sampled lines may differ a little
    import numpy as np
    from PIL import Image

    from tests.conftest import REPO

    drawn = np.asarray(Image.open(tmp_path / "demo" / "demo-match.png").convert("L"), float)
    shown = np.asarray(Image.open(REPO / "docs" / "demo-match.png").convert("L"), float)
    assert drawn.shape == shown.shape, "docs/demo-match.png is stale: run `make demo-picture`"
    assert np.abs(drawn - shown).mean() < 10, "docs/demo-match.png is stale: `make demo-picture`"


def test_demo_on_your_own_gallery(tmp_path):
    from tests.conftest import two_view_gallery

    gallery = two_view_gallery(tmp_path / "mine")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark_client.cli",
            "demo",
            "--gallery",
            str(gallery),
            "--out",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leave-one-out over your gallery" in proc.stdout
    assert "top-1 1.000 over 4 queries" in proc.stdout
    assert "match picture:" in proc.stdout  # the picture `demo --help` promises
    assert (tmp_path / "demo" / "demo-match.png").stat().st_size > 10_000
