"""Build the ALIKED files the extractor serves from the official PyTorch weights.

    make export-aliked            (python -m extractor_service.models.export_aliked)

For each variant it writes, beside this file in ``aliked/``:

- ``aliked-VARIANT.onnx``: the dense network (image [1, 3, H, W] RGB in [0, 1], H and W
  multiples of 32 -> feature map [1, C, H, W] before L2 normalisation and score map
  [1, 1, H, W]), exported from kornia's ``ALIKED`` with the dynamo exporter and symbolic H
  and W, so one graph serves every image size;
- ``aliked-VARIANT-head.npz``: the sparse descriptor head's six tensors, for
  ``backends.aliked_heads.describe``;
- ``aliked-VARIANT-extract.onnx``: the whole extraction (``aliked_graph.Extraction``: image
  -> keypoints, scores, descriptors) with symbolic batch, height, width and keypoint budget;

then checks each graph against PyTorch on three sizes and writes ``SHA256SUMS``. The first
two serve the numpy-head path (``--aliked-head numpy``), the third the default. PyTorch,
kornia, onnx and onnxscript are needed here only (``requirements-export.txt``); the service
runs the result with ONNX Runtime.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

from extractor_service.backends.aliked_heads import HeadWeights

HERE = Path(__file__).resolve().parent / "aliked"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "aliked"
VARIANTS = ("t16", "n16", "n32")
CHECK_SIZES = ((480, 640), (608, 800), (768, 1024))
# The official files (Shiaoming/ALIKED, models/, commit 683d7c65197395c0b3f01ebe76e1084a27e73a65).
OFFICIAL_SHA256 = {
    "t16": "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
    "n16": "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
    "n32": "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
}
TOLERANCE = 1e-4  # float32 graph vs PyTorch eager, any output element
KEYPOINT_TOLERANCE = 1e-3  # pixels, whole extraction vs kornia's ALIKED.forward


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_sources(weights: Path, variants: list[str]) -> None:
    for variant in variants:
        path = weights / f"aliked-{variant}.pth"
        if not path.is_file():
            sys.exit(f"{path} is missing: --weights must name the folder of the official files")
        if sha256(path) != OFFICIAL_SHA256[variant]:
            sys.exit(f"{path} is not the official aliked-{variant}.pth (SHA-256 differs)")


def export(variant: str, weights: Path, out: Path) -> None:
    import onnxruntime as ort
    import torch
    from kornia.feature.aliked.aliked import ALIKED

    class Dense(torch.nn.Module):
        """``ALIKED.extract_dense_map`` less its first and last steps: the caller pads the
        image to multiples of 32, and L2-normalises the features only where the descriptor
        head reads them (normalising the whole [C, H, W] map was half the graph's time)."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            m = self.model
            x1 = m.block1(image)
            x2 = m.block2(m.pool2(x1))
            x3 = m.block3(m.pool4(x2))
            x4 = m.block4(m.pool4(x3))
            x1234 = torch.cat(
                [
                    m.gate(m.conv1(x1)),
                    m.upsample2(m.gate(m.conv2(x2))),
                    m.upsample8(m.gate(m.conv3(x3))),
                    m.upsample32(m.gate(m.conv4(x4))),
                ],
                dim=1,
            )
            return x1234, torch.sigmoid(m.score_head(x1234))

    state = torch.load(weights / f"aliked-{variant}.pth", map_location="cpu")
    model = ALIKED(model_name=f"aliked-{variant}")
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) != {"dkd.hw_grid"}:
        sys.exit(f"aliked-{variant}: state dict does not fit kornia's ALIKED: {result}")
    model.eval()
    dense = Dense(model).eval()

    height = torch.export.Dim("height", min=1, max=256)  # in units of 32 pixels
    width = torch.export.Dim("width", min=1, max=256)
    onnx_path = out / f"aliked-{variant}.onnx"
    program = torch.onnx.export(
        dense,
        (torch.rand(1, 3, 480, 640),),
        dynamo=True,
        dynamic_shapes={"image": {2: 32 * height, 3: 32 * width}},
        input_names=["image"],
        output_names=["features", "scores"],
    )
    program.save(str(onnx_path))

    head = {k: state[k].numpy() for k in HeadWeights.FILE_KEYS.values()}
    np.savez(out / f"aliked-{variant}-head.npz", **head)

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in CHECK_SIZES:
        image = rng.random((1, 3, h, w), dtype=np.float32)
        features, scores = session.run(None, {"image": image})
        got = (features / np.linalg.norm(features, axis=1, keepdims=True), scores)
        with torch.no_grad():
            want = [t.numpy() for t in model.extract_dense_map(torch.from_numpy(image))]
        worst = max(float(np.abs(g - x).max()) for g, x in zip(got, want, strict=True))
        print(f"aliked-{variant} {h}x{w}: largest difference from PyTorch {worst:.2e}")
        if worst > TOLERANCE:
            sys.exit(f"aliked-{variant}: the ONNX graph differs from PyTorch by {worst}")
    export_extraction(variant, state, out)


def export_extraction(variant: str, state: dict, out: Path) -> None:
    """The whole extraction as one graph, checked against kornia's ``ALIKED.forward``."""
    import onnxruntime as ort
    import torch
    from kornia.feature.aliked.aliked import ALIKED

    from extractor_service.models.aliked_graph import Extraction

    def official(**kwargs):  # noqa: ANN202
        model = ALIKED(model_name=f"aliked-{variant}", **kwargs)
        model.load_state_dict(state, strict=False)
        return model.eval()

    dim = torch.export.Dim
    example = (
        torch.randint(0, 256, (2, 480, 640, 3), dtype=torch.uint8),
        torch.tensor([3, 5, 470, 630]),
        torch.zeros(1000),
        torch.tensor(0.2),
    )
    program = torch.onnx.export(
        Extraction(official()).eval(),
        example,
        dynamo=True,
        dynamic_shapes={
            "image": {
                0: dim("batch", min=1, max=64),
                1: 32 * dim("height", min=1, max=256),
                2: 32 * dim("width", min=1, max=256),
            },
            "crop": None,
            "budget": {0: dim("keypoints", min=1, max=1 << 20)},
            "threshold": None,
        },
        # opset 18: GridSample in its opset-16 form, which ONNX Runtime's CUDA provider
        # implements (so the head's sampling stays on the GPU)
        opset_version=18,
        input_names=["image", "crop", "budget", "threshold"],
        output_names=["keypoints", "scores", "descriptors", "valid"],
    )
    path = out / f"aliked-{variant}-extract.onnx"
    program.save(str(path))

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = official(max_num_keypoints=1000, detection_threshold=0.2)
    rng = np.random.default_rng(0)
    for h, w in CHECK_SIZES:
        image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        feed = {
            "image": image,
            "crop": np.array([0, 0, h, w]),
            "budget": np.zeros(1000, np.float32),
            "threshold": np.array(0.2, np.float32),
        }
        keypoints, _, descriptors, valid = session.run(None, feed)
        keypoints, descriptors = keypoints[0][valid[0]], descriptors[0][valid[0]]
        with torch.no_grad():
            want = reference(torch.from_numpy(image).permute(0, 3, 1, 2).float() / 255)[0]
        distance = np.linalg.norm(keypoints[:, None] - want.keypoints.numpy()[None], axis=2)
        nearest = distance.argmin(axis=1)
        moved = float(distance.min(axis=1).max())
        worst = float(np.abs(descriptors - want.descriptors.numpy()[nearest]).max())
        print(
            f"aliked-{variant} extraction {h}x{w}: {len(keypoints)} keypoints, largest "
            f"move {moved:.1e} px, largest descriptor difference {worst:.1e}"
        )
        same = len(keypoints) == len(want.keypoints) == len(set(nearest))
        if not same or moved > KEYPOINT_TOLERANCE or worst > TOLERANCE:
            sys.exit(f"aliked-{variant}: the extraction graph differs from PyTorch")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        type=Path,
        default=DEFAULT_WEIGHTS,
        help="folder of the official aliked-*.pth files and their LICENSE "
        "(default: ../shared/models/aliked beside the checkout)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where to write (default: %(default)s)"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    check_sources(args.weights, args.variants)
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        export(variant, args.weights, args.out)
    shutil.copyfile(args.weights / "LICENSE", args.out / "LICENSE")
    files = sorted(p for p in args.out.iterdir() if p.suffix in (".onnx", ".npz"))
    (args.out / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.name}\n" for p in files))
    print(f"wrote {len(files)} files and SHA256SUMS to {args.out}")


if __name__ == "__main__":
    main()
