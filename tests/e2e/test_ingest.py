"""Ingest through a pool of real extractor processes into a real search process: the
photos spread over the pool, a replica killed mid-run, the search node killed with -9
mid-run and restarted, broken files among good ones, a rerun that adds nothing."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from landmark_client import LandmarkClient, SearchClient
from landmark_client.types import Photo
from tests.e2e.test_scale_out import Topology

PHOTOS = 32


@pytest.fixture
def services(tmp_path):
    s = Topology(tmp_path, settings={})  # the services' default settings: sealing on
    yield s
    s.stop()


@pytest.fixture
def gallery(landmarks_dir, tmp_path) -> Path:
    """A labeled folder of PHOTOS real photos (links to the shared ones), distractors out."""
    with open(landmarks_dir / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["landmark"] != "distractor"][:PHOTOS]
    folder = tmp_path / "gallery"
    for r in rows:
        link = folder / r["landmark"] / Path(r["file"]).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(landmarks_dir / r["file"])
    return folder


def photos_of(folder: Path) -> list[Photo]:
    return [
        Photo(p.relative_to(folder).as_posix(), p.parent.name, p)
        for p in sorted(folder.glob("*/*"))
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ids_in(search: str) -> list[str]:
    with SearchClient(search) as client:
        return [r.image_id for r in client.list_images()]


def two_extractors(services: Topology) -> str:
    return ",".join(services.start(f"ex{i}", "extractor", "--backend", "sift") for i in (0, 1))


def test_the_pool_shares_the_photos_and_a_rerun_adds_nothing(services, gallery, tmp_path):
    extractors = two_extractors(services)
    search = services.start("search", "search", "--index-dir", str(tmp_path / "index"))
    with LandmarkClient(extractors, search, timeout=60) as client:
        report = client.index_folder(gallery)
        assert (report.added, report.failed, report.retried) == (PHOTOS, [], 0)
        shares = sorted(report.described.values())
        assert sum(shares) == PHOTOS  # nothing extracted twice
        assert len(shares) == 2 and shares[0] >= PHOTOS // 3, report.described  # a fair share
        again = client.index_folder(gallery)
        assert (again.added, again.already_indexed, sum(again.described.values())) == (
            0,
            PHOTOS,
            0,
        )
    assert sorted(ids_in(search)) == [p.image_id for p in photos_of(gallery)]


def test_an_extractor_killed_mid_run_leaves_its_photos_to_the_other(services, gallery, tmp_path):
    extractors = two_extractors(services)
    search = services.start("search", "search", "--index-dir", str(tmp_path / "index"))

    def photos() -> Iterator[Photo]:
        for n, photo in enumerate(photos_of(gallery)):
            if n == 10:
                # both extractors have answered (the first photos are in the index: the pool
                # reads ahead, so photo 10 can be asked for before either has), then ex1 dies
                # with calls in flight: they fail and go to ex0
                deadline = time.monotonic() + 60
                while len(ids_in(search)) < 6 and time.monotonic() < deadline:
                    time.sleep(0.05)
                services.kill("ex1")
            yield photo

    with LandmarkClient(extractors, search, timeout=60) as client:
        report = client.ingest(photos())
    assert (report.added, report.failed) == (PHOTOS, [])
    assert sorted(ids_in(search)) == [p.image_id for p in photos_of(gallery)]
    killed, alive = services.addresses["ex1"], services.addresses["ex0"]
    # ex1 worked before the kill, and had calls in flight at it: they failed and were sent
    # again, to ex0 (the only replica left), which described every other photo
    assert report.described.get(killed, 0) >= 1 and report.retried >= 1
    assert report.described[alive] + report.described.get(killed, 0) == PHOTOS
    assert report.described[alive] >= PHOTOS - 10


def test_the_search_node_killed_mid_run_loses_no_acknowledged_add(services, gallery, tmp_path):
    extractors = two_extractors(services)
    port, index = free_port(), str(tmp_path / "index")
    search = services.start("search", "search", "--index-dir", index, port=port)

    def photos() -> Iterator[Photo]:
        for n, photo in enumerate(photos_of(gallery)):
            if n == 20:  # adds have been acknowledged: kill -9, then back on the same port
                services.kill("search")
                services.start("search", "search", "--index-dir", index, port=port)
            yield photo

    with LandmarkClient(extractors, search, timeout=60) as client:
        first = client.ingest(photos())
        assert first.failed == [] and first.added + first.already_indexed == PHOTOS
        again = client.index_folder(gallery)  # the run repeated: nothing left to add
        assert (again.added, again.already_indexed) == (0, PHOTOS)
    held = ids_in(search)
    assert sorted(held) == [p.image_id for p in photos_of(gallery)]  # each exactly once


def test_broken_files_are_reported_and_the_good_ones_indexed(services, gallery, tmp_path):
    broken = {
        "kremlin/garbage.jpg": os.urandom(5000),
        "kremlin/empty.png": b"",
        "notre_dame/text.jpg": b"this is not a photo\n" * 50,
    }
    for name, data in broken.items():
        (gallery / name).parent.mkdir(exist_ok=True)
        (gallery / name).write_bytes(data)
    extractors = two_extractors(services)
    search = services.start("search", "search", "--index-dir", str(tmp_path / "index"))
    with LandmarkClient(extractors, search, timeout=60) as client:
        report = client.index_folder(gallery)
    assert report.added == PHOTOS
    assert sorted(i for i, _ in report.failed) == sorted(broken)
    assert all(why for _, why in report.failed)
    assert len(ids_in(search)) == PHOTOS


def test_a_full_buffer_makes_the_ingest_wait_not_lose(services, gallery, tmp_path):
    extractors = two_extractors(services)
    search = services.start(
        "search",
        "search",
        "--index-dir",
        str(tmp_path / "index"),
        "--max-growing-descriptors",
        "2500",  # a few photos: most adds find the buffer full until a seal
        "--seal-seconds",
        "1.5",
        "--seal-descriptors",
        "100000",
    )
    with LandmarkClient(extractors, search, timeout=60) as client:
        report = client.ingest(photos_of(gallery))
    assert (report.added, report.failed) == (PHOTOS, [])
    assert report.add_retries > 0  # it was refused, waited as told, and sent again
    assert services.procs["search"].poll() is None


def test_a_photo_whose_features_are_refused_is_named_and_the_others_indexed(
    services, landmarks_dir, tmp_path
):
    from PIL import Image

    folder = tmp_path / "refusing"
    photos = sorted((landmarks_dir / "images" / "sacre_coeur").glob("*"))[:6]
    (folder / "sacre_coeur").mkdir(parents=True)
    for p in photos:  # small: a few hundred keypoints each
        small = Image.open(p).convert("RGB").resize((200, 150))
        small.save(folder / "sacre_coeur" / f"{p.stem}.png")
    big = folder / "notre_dame" / "big.jpg"  # 2,000 keypoints: more than one add may hold
    big.parent.mkdir()
    big.symlink_to(sorted((landmarks_dir / "images" / "notre_dame").glob("*.jpg"))[0])
    extractor = services.start("ex", "extractor", "--backend", "sift", "--max-features", "2000")
    search = services.start(
        "search", "search", "--index-dir", str(tmp_path / "index"), "--max-add-features", "1500"
    )
    cli = subprocess.run(
        [sys.executable, "-m", "landmark_client.cli", "index", str(folder), "--json",
         "--extractor", extractor, "--search", search],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 1, cli.stderr
    report = json.loads(cli.stdout)
    assert report["added"] == 6 and [f["image_id"] for f in report["failed"]] == [
        "notre_dame/big.jpg"
    ]
    assert "above this service's limit of 1500" in report["failed"][0]["reason"]
    assert len(ids_in(search)) == 6
