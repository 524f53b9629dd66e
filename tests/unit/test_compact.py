"""The compact segment format: int8 descriptors, uint16 locations, Annoy over a PCA
projection; its size per descriptor, what it keeps of the matches, and a merge that
streams images instead of holding them."""

import json
import tracemalloc

import numpy as np
import pytest

from search_service.index.compact import (
    Covariance,
    dequantize_descriptors,
    dequantize_locations,
    quantize_descriptors,
    quantize_locations,
)
from search_service.index.images import ImageData
from search_service.index.segment import load_segment
from search_service.index.segment_writer import StoredImages, build_segment, bytes_needed
from search_service.search.exact_matches import mutual_matches


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def images(n_images, rows=500, dim=128, seed=0, structure=None):
    """Images whose descriptors have the low-rank structure real ones have: a few strong
    directions plus noise (so that a PCA projection has something to keep)."""
    rng = np.random.default_rng(seed)
    basis = structure if structure is not None else rng.normal(size=(24, dim))
    out = []
    for i in range(n_images):
        d = unit(rng.normal(size=(rows, 24)) @ basis + 0.3 * rng.normal(size=(rows, dim)))
        loc = rng.uniform(0, [640, 480], size=(rows, 2)).astype(np.float32)
        out.append(ImageData(f"img-{i}", f"label-{i % 3}", d, loc, 640, 480, {"i": str(i)}))
    return out


def test_descriptors_keep_their_direction_and_their_matches():
    rng = np.random.default_rng(1)
    a = unit(rng.normal(size=(2000, 128)))
    b = unit(a + 0.25 * rng.normal(size=a.shape))  # noisy copies, shuffled
    b = b[rng.permutation(len(b))]
    back = dequantize_descriptors(quantize_descriptors(b))
    assert np.einsum("ij,ij->i", back, b).min() > 0.999
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), 1, atol=1e-5)
    q1, d1 = mutual_matches(a, b, 0.85, 0.9)
    q2, d2 = mutual_matches(a, back, 0.85, 0.9)
    same = len(set(zip(q1, d1, strict=True)) & set(zip(q2, d2, strict=True)))
    assert same >= 0.99 * len(q1) and abs(len(q2) - len(q1)) <= 0.01 * len(q1)


def test_locations_are_within_a_step_of_the_original():
    # the service accepts keypoints a little outside the frame: they are kept too
    xy = np.array([[0, 0], [7999.9, 5999.3], [1234.56, 17.25], [-150, 6100]], np.float32)
    back = dequantize_locations(quantize_locations(xy, (8000, 6000)), (8000, 6000))
    assert np.abs(back - xy).max() <= 1.5 * 8000 / 65535


def test_the_projection_keeps_the_strongest_directions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5000, 16)) * np.linspace(10, 1, 16)
    cov = Covariance(16)
    for chunk in np.array_split(x, 7):
        cov.add(chunk)
    p = cov.projection(4)
    np.testing.assert_allclose(p.axes.T @ p.axes, np.eye(4), atol=1e-5)
    np.testing.assert_allclose(p.mean, x.mean(axis=0), atol=1e-4)
    assert np.abs(p.axes[:4, :]).max(axis=0).min() > 0.9  # the four widest axes, in order
    assert np.abs(p(x).std(axis=0) - np.linspace(10, 1, 16)[:4]).max() < 0.5


def test_a_compact_segment_is_under_350_bytes_per_descriptor(tmp_path):
    imgs = images(40)  # 20,000 rows of 128-D
    seg = build_segment(imgs, 128, 8, tmp_path / "tmp", tmp_path / "seg-000001")
    per_row = seg.bytes_on_disk() / seg.rows
    assert per_row <= 350, per_row
    assert bytes_needed(imgs, 128, 8) >= seg.bytes_on_disk()
    meta = json.loads((seg.path / "meta.json").read_text())
    assert (meta["format"], meta["projected_dimension"]) == (4, 16)
    d, loc = seg.features(7)
    assert np.einsum("ij,ij->i", d, imgs[7].descriptors).min() > 0.999
    assert np.abs(loc - imgs[7].locations).max() <= 1.5 * 640 / 65535 + 1e-4
    again = load_segment(seg.path)
    assert again.image_of(np.array([0, 499, 500, 19999])).tolist() == [0, 0, 1, 39]


def test_a_merge_streams_images_instead_of_holding_them(tmp_path):
    """Rebuilding 100,000 rows from stored segments: the arrays numpy allocates at once
    stay near one image's worth, not the 51 MB the rows take as float32."""
    structure = np.random.default_rng(9).normal(size=(24, 128))
    old = [
        build_segment(
            images(100, seed=s, structure=structure), 128, 4, tmp_path / f"t{s}", tmp_path / f"s{s}"
        )
        for s in range(2)
    ]
    stored = StoredImages([(seg, i) for seg in old for i in range(len(seg.images))])
    assert len(stored) == 200 and stored.row_count() == 100_000
    tracemalloc.start()
    merged = build_segment(stored, 128, 4, tmp_path / "tm", tmp_path / "merged")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert merged.rows == 100_000
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB allocated at once"
    d, _ = merged.features(150)
    want, _ = old[1].features(50)
    assert np.einsum("ij,ij->i", d, want).min() > 0.999


@pytest.mark.parametrize("dims", [(128, 32), (40, 32), (16, 32)])
def test_the_projection_never_exceeds_the_descriptor_dimension(tmp_path, dims):
    dim, projected = dims
    seg = build_segment(
        images(2, rows=100, dim=dim), dim, 2, tmp_path / "t", tmp_path / "s",
        projection_dim=projected,
    )  # fmt: skip
    assert seg.projection.dimension == min(dim, projected)
