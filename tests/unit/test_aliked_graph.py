"""The shipped extraction graphs return keypoint-sized outputs only, and `make gpu-check`
reports a CPU-only machine cleanly."""

import json
import subprocess
import sys

import onnxruntime as ort
import pytest

from extractor_service.backends.aliked import MODEL_DIR


@pytest.mark.parametrize(("variant", "dimension"), [("t16", 64), ("n16", 128), ("n32", 128)])
def test_nothing_of_the_feature_maps_size_leaves_the_graph(variant, dimension):
    session = ort.InferenceSession(
        str(MODEL_DIR / f"aliked-{variant}-extract.onnx"), providers=["CPUExecutionProvider"]
    )
    inputs = [(i.name, i.shape, i.type) for i in session.get_inputs()]
    assert inputs == [
        ("image", ["batch", "32*height", "32*width", 3], "tensor(uint8)"),
        ("crop", [4], "tensor(int64)"),
        ("budget", ["keypoints"], "tensor(float)"),
        ("threshold", [], "tensor(float)"),
    ]
    outputs = [(o.name, o.shape, o.type) for o in session.get_outputs()]
    assert outputs == [
        ("keypoints", ["batch", "keypoints", 2], "tensor(float)"),
        ("scores", ["batch", "keypoints"], "tensor(float)"),
        ("descriptors", ["batch", "keypoints", dimension], "tensor(float)"),
        ("valid", ["batch", "keypoints"], "tensor(bool)"),
    ]


def test_gpu_check_says_no_gpu_on_a_cpu_machine(tmp_path):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA GPU: make gpu-check measures it")
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("no GPU: ONNX Runtime offers") and "CPUExecutionProvider" in first
    assert "descriptors ['batch', 'keypoints', 128]" in proc.stdout
    report = json.loads(out.read_text())
    assert report["gpu"] is False and "CPUExecutionProvider" in report["available_providers"]
    assert [o["name"] for o in report["graph_outputs"]] == [
        "keypoints",
        "scores",
        "descriptors",
        "valid",
    ]
