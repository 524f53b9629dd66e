"""The `landmark` command, run as a user would (subprocesses, real services)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landmark_client import SearchClient
from landmark_client.local import local_search, local_services
from tests.conftest import sample_photo, two_view_gallery

LANDMARK = [sys.executable, "-m", "landmark_client.cli"]
# the command as a terminal runs it: Ctrl-C raises KeyboardInterrupt, even when the tests
# themselves were started in the background, where SIGINT is ignored and children inherit that
INTERRUPTIBLE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from landmark_client.cli import main; sys.exit(main())"
)


def run(*args, env=None, check=True):
    proc = subprocess.run(
        [*LANDMARK, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"landmark {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    with local_services(index_dir=tmp_path_factory.mktemp("cli") / "index") as addresses:
        yield {"LANDMARK_EXTRACTOR": addresses[0], "LANDMARK_SEARCH": addresses[1]}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    for label, name in (("astronaut", "astronaut.png"), ("coffee", "coffee.png")):
        (root / label).mkdir()
        shutil.copy(sample_photo(name), root / label / name)
    (root / "coffee" / "notes.txt").write_text("not an image, ignored")
    return root


def test_index_twice_adds_nothing_twice(services, gallery):
    first = run("index", str(gallery), env=services)
    assert "2 photos found, 0 already indexed, 2 added, 0 failed" in first.stdout
    second = run("index", str(gallery), env=services)
    assert "2 photos found, 2 already indexed, 0 added, 0 failed" in second.stdout
    info = json.loads(run("info", env=services).stdout)
    assert info["images"] == 2 and info["backend"] == "aliked"  # the default backend
    removed = run("remove", "coffee/coffee.png", "ghost.png", env=services).stdout
    assert "removed 1; not in the index: 1" in removed
    assert json.loads(run("info", env=services).stdout)["images"] == 1
    third = run("index", str(gallery), env=services)  # puts it back
    assert "1 already indexed, 1 added" in third.stdout


def test_query_json_and_text(services, gallery):
    run("index", str(gallery), env=services)
    out = json.loads(run("query", str(sample_photo("coffee.png")), "--json", env=services).stdout)
    assert out["match"] and out["label"] == "coffee"
    assert out["candidates"][0]["image_id"] == "coffee/coffee.png"
    text = run("query", str(sample_photo("rocket.jpg")), env=services).stdout
    assert "best guess: no match" in text


def test_addresses_from_flags_beat_the_environment(services):
    bad = {"LANDMARK_SEARCH": "127.0.0.1:1"}
    proc = run("info", env=bad, check=False)
    assert proc.returncode == 1 and "UNAVAILABLE" in proc.stderr
    assert json.loads(run("info", "--search", services["LANDMARK_SEARCH"], env=bad).stdout)


def test_match_draws_a_picture(services, tmp_path):
    out = tmp_path / "m.png"
    from PIL import Image

    view = tmp_path / "view.png"
    img = Image.open(sample_photo("coffee.png")).rotate(20, expand=True)
    img.resize((img.width // 2, img.height // 2)).save(view)
    proc = run("match", str(view), str(sample_photo("coffee.png")), "--out", str(out), env=services)
    inliers = int(proc.stdout.split()[0])
    assert inliers >= 30 and ": match (a search needs 9)" in proc.stdout  # aliked's threshold
    picture = Image.open(out)
    assert picture.width > picture.height > 300
    # two different photos: a handful of chance correspondences, judged by the threshold a
    # search uses, not by "any inlier at all"
    proc = run(
        "match",
        str(sample_photo("astronaut.png")),
        str(sample_photo("coffee.png")),
        "--out",
        str(out),
        env=services,
    )
    assert int(proc.stdout.split()[0]) < 9 and ": no match (a search needs 9)" in proc.stdout


def test_match_goes_through_the_running_services_it_is_given(services, tmp_path):
    """--search is honoured: a dead search address fails the match, naming it."""
    proc = run(
        "match",
        str(sample_photo("coffee.png")),
        str(sample_photo("coffee.png")),
        "--extractor",
        services["LANDMARK_EXTRACTOR"],
        "--search",
        "127.0.0.1:1",
        "--out",
        str(tmp_path / "m.png"),
        "--timeout",
        "30",
        check=False,
    )
    assert proc.returncode == 1 and "search service at 127.0.0.1:1" in proc.stderr


def test_a_folder_given_as_a_photo_says_so(services, gallery, tmp_path):
    query = run("query", str(gallery), env=services, check=False)
    match = run(
        "match", str(gallery), str(sample_photo("coffee.png")), "--out", str(tmp_path / "m.png"),
        env=services, check=False,
    )  # fmt: skip
    for proc in (query, match):
        assert proc.returncode == 2, proc.stderr
        assert "is a folder: give the path of one photo" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_swapped_ports_name_the_service_and_the_address(services):
    swapped = {
        "LANDMARK_EXTRACTOR": services["LANDMARK_SEARCH"],
        "LANDMARK_SEARCH": services["LANDMARK_EXTRACTOR"],
    }
    proc = run("query", str(sample_photo("coffee.png")), env=swapped, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"the server at {services['LANDMARK_SEARCH']} is not the extractor" in proc.stderr
    assert "listen on different ports" in proc.stderr


def test_index_leaves_the_distractor_folder_out(services, gallery, tmp_path):
    root = tmp_path / "with-distractors"
    shutil.copytree(gallery, root)
    (root / "distractor").mkdir()
    shutil.copy(sample_photo("rocket.jpg"), root / "distractor" / "rocket.jpg")
    proc = run("index", str(root), env=services)
    assert "1 photos labeled 'distractor' left out" in proc.stdout
    listed = run("query", str(sample_photo("rocket.jpg")), "--json", env=services).stdout
    assert json.loads(listed)["label"] is None  # no "distractor" answer


def test_help_says_what_each_argument_is():
    query = " ".join(run("query", "--help").stdout.split())
    assert "image the photo (a file path)" in query and "candidates to list (default: 5)" in query
    evaluation = " ".join(run("eval", "--help").stdout.split())
    assert "(default: distractor)" in evaluation
    assert "serve" not in run("--help").stdout  # the services run from their own packages


def test_bad_input_gives_a_message_not_a_traceback(services, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not a jpeg")
    proc = run("query", str(junk), env=services, check=False)
    assert proc.returncode == 1
    assert "INVALID_ARGUMENT" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("index", str(tmp_path / "missing"), env=services, check=False)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_a_service_reads_its_port_from_the_environment_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "LANDMARK_SEARCH_PORT": "0", "LANDMARK_INDEX_DIR": str(tmp_path / "i")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "search_service"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    # its start-up log names the flags that turn TLS on, not the settings' field names
    assert "give --tls-cert and --tls-key" in proc.stderr.read()


def test_eval_json_on_a_two_view_gallery(tmp_path):
    root = two_view_gallery(tmp_path / "g")
    out = json.loads(run("eval", str(root), "--json").stdout)
    assert out["queries"] == 4 and out["top1"] == 1.0 and out["map"] == 1.0
    assert set(out["per_landmark"]) == {"astronaut", "coffee"}
    assert Path(root).exists()


def test_eval_runs_in_an_empty_deployment_and_leaves_it_empty(services, landmarks_dir, tmp_path):
    root = tmp_path / "g"  # 24 real photos: querying them takes seconds, time to interrupt
    for photo in sorted((landmarks_dir / "images").glob("*/*.jpg"))[:24]:
        (root / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (root / photo.parent.name / photo.name).symlink_to(photo)
    env = {"LANDMARK_EXTRACTOR": services["LANDMARK_EXTRACTOR"]}
    with local_search() as search:
        out = run("eval", str(root), "--json", "--search", search, env=env)
        assert json.loads(out.stdout)["queries"] > 0
        assert "removed the 24 evaluation photos" in out.stderr
        assert ids_held(search) == []
        # interrupted while querying (Ctrl-C): what it added is removed all the same
        proc = subprocess.Popen(
            [sys.executable, "-c", INTERRUPTIBLE, "eval", str(root), "--search", search],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not querying(search) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        code, said = proc.wait(timeout=60), proc.stderr.read()
        assert code == 130, said  # interrupted, not finished
        assert "removed the 24 evaluation photos" in said
        assert ids_held(search) == []


def querying(search: str) -> bool:
    """The photos are in and the index has settled: an evaluation queries from then on."""
    with SearchClient(search) as client:
        info = client.index_info()
    return info.images == 24 and info.settled


def ids_held(search: str) -> list[str]:
    with SearchClient(search) as client:
        return [r.image_id for r in client.list_images()]


def test_eval_never_writes_into_the_index_it_is_given(services, tmp_path):
    from landmark_client import LandmarkClient

    root = two_view_gallery(tmp_path / "g")
    with LandmarkClient(services["LANDMARK_EXTRACTOR"], services["LANDMARK_SEARCH"]) as c:
        # an image of the live index under an id the gallery uses too
        c.add_image(sample_photo("camera.png"), "astronaut/a.png", "live", on_conflict="replace")
        before = c.search.index_info()
        listed = [(r.image_id, r.label) for r in c.search.list_images()]
    out = json.loads(run("eval", str(root), "--json", env=services).stdout)
    assert out["queries"] == 4 and out["top1"] == 1.0  # evaluated, in a scratch index
    refused = run("eval", str(root), "--search", services["LANDMARK_SEARCH"], check=False)
    assert refused.returncode == 2 and f"holds {before.images} images" in refused.stderr
    with LandmarkClient(services["LANDMARK_EXTRACTOR"], services["LANDMARK_SEARCH"]) as c:
        after = c.search.index_info()
        assert [(r.image_id, r.label) for r in c.search.list_images()] == listed
    # (the generation may move: the node seals and compacts what it holds by itself)
    assert (after.images, after.descriptors) == (before.images, before.descriptors)
