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
    assert (tmp_path / "demo" / "demo-match.png").stat().st_size > 10_000
    assert "services stopped" in proc.stdout
