"""The SDK installs and works in a virtual environment without TensorFlow, OpenCV or Annoy."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, sample_photo

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    for heavy in ("cv2", "annoy", "tensorflow", "PIL", "extractor_service", "search_service"):
        assert importlib.util.find_spec(heavy) is None, heavy + " must not be installed"
    import numpy as np
    from landmark_client import LandmarkClient, ImageToAdd, LandmarkError
    from landmark_client import aio  # the asyncio twins import with the SDK alone
    extractor, search, photo = sys.argv[1:4]
    with LandmarkClient(extractor, search, timeout=30) as client:
        assert client.extractor.health() == "SERVING" and client.search.health() == "SERVING"
        f = client.extractor.extract(photo)
        client.search.add_images([ImageToAdd("sdk-only", "astronaut", f)])
        pixels = np.zeros((50, 50, 3), np.uint8)
        assert len(client.extractor.extract(pixels)) == 0
        rec = client.recognize(photo, timeout=30)
        assert rec.label == "astronaut", rec
        try:
            client.search.search(f, top_k=0)
        except LandmarkError as err:
            assert err.code.name == "INVALID_ARGUMENT"
        else:
            raise AssertionError("top_k=0 accepted")
    print("SDK OK", rec.best.inliers)
""")


def test_sdk_alone(tmp_path, extractor_server, search_server):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(REPO / "client")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    script = tmp_path / "use_sdk.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [str(py), str(script), extractor_server, search_server, str(sample_photo())],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SDK OK" in run.stdout

    # the command line with the SDK's `cli` extra (progress bars, pictures) and no server
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", f"{REPO / 'client'}[cli]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    landmark = venv / "bin" / "landmark"
    addresses = ["--extractor", extractor_server, "--search", search_server]
    photo = str(sample_photo())
    match = subprocess.run(
        [str(landmark), "match", photo, photo, *addresses, "--out", str(tmp_path / "m.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert match.returncode == 0, match.stdout + match.stderr
    assert ": match (a search needs" in match.stdout and (tmp_path / "m.png").stat().st_size
    # a command that would start local services says what to install, without a traceback
    evaluation = subprocess.run(
        [str(landmark), "eval", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert evaluation.returncode == 2
    assert "service is not installed in this Python" in evaluation.stderr
    assert "Traceback" not in evaluation.stderr
