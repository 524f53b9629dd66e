"""Each side installs alone with the contract (protos/, the `landmark` package): the SDK
works in a virtual environment without TensorFlow, OpenCV, Annoy or a server package, and a
search node works without the SDK."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, sample_photo

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    for heavy in ("cv2", "annoy", "tensorflow", "PIL", "extractor_service", "search_service",
                  "serving"):
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


def pip_install(py, *requirements: str) -> None:  # noqa: ANN001
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", *requirements],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]


def venv_with(path, *requirements: str):  # noqa: ANN001, ANN201
    """A new virtual environment at ``path`` with ``requirements`` installed by pip."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    py = path / "bin" / "python"
    pip_install(py, *requirements)
    return py


def test_sdk_alone(tmp_path, extractor_server, search_server):
    venv = tmp_path / "venv"
    py = venv_with(venv, str(REPO / "protos"), str(REPO / "client"))
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
    pip_install(py, str(REPO / "protos"), f"{REPO / 'client'}[cli]")
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


SERVER_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    assert importlib.util.find_spec("landmark_client") is None, "the SDK must not be installed"
    import grpc
    import numpy as np
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from landmark.v1 import search_pb2, search_pb2_grpc
    from landmark.wire import Features, features_to_proto
    from search_service.config import SearchConfig
    from search_service.server import create_server

    config = SearchConfig(port=0, metrics_port=-1, index_dir=sys.argv[1])
    running, port, engine = create_server(config)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    check = health_pb2.HealthCheckRequest(service="landmark.v1.Search")
    assert health_pb2_grpc.HealthStub(channel).Check(check).status == 1  # SERVING
    rng = np.random.default_rng(0)
    d = rng.normal(size=(50, 128)).astype("f4")
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    f = Features("sift", rng.uniform(0, 99, (50, 2)).astype("f4"), d, (100, 100))
    search = search_pb2_grpc.SearchStub(channel)
    image = search_pb2.ImageEntry(image_id="a", label="x", features=features_to_proto(f))
    added = search.AddImages(search_pb2.AddImagesRequest(images=[image]))
    print("SERVER OK", added.added, added.index.images)
    running.stop(0)
    engine.close()
""")


def test_search_node_alone(tmp_path):
    py = venv_with(tmp_path / "venv", str(REPO / "protos"), f"{REPO}[search]")
    script = tmp_path / "serve.py"
    script.write_text(SERVER_SCRIPT)
    run = subprocess.run(
        [str(py), str(script), str(tmp_path / "index")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SERVER OK 1 1" in run.stdout
