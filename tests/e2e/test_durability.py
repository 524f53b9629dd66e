"""An acknowledged add survives kill -9 of the search service at any moment."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from landmark_client import Features, ImageToAdd, LandmarkError, SearchClient

ROUNDS = 12


def features(i: int) -> Features:
    rng = np.random.default_rng(i)
    d = rng.random((150, 128), dtype=np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = (rng.random((150, 2)) * [640, 480]).astype(np.float32)
    return Features("sift", loc, d, (640, 480))


def start(index_dir, log=None, **settings: str) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "LANDMARK_SEAL_SECONDS": "0.2",
        "LANDMARK_SEAL_DESCRIPTORS": "1500",
        "LANDMARK_MAX_SEGMENTS": "3",
        **settings,
    }  # seal and merge all the time
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search_service",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--index-dir",
            str(index_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("LISTENING"), f"the search service did not start: {line!r}"
    address = line.split()[1]
    with SearchClient(address) as client:
        client.wait_ready(60)  # listening at once, serving once the index is loaded
    return proc, address


def test_acknowledged_adds_survive_kill_9(tmp_path):
    index_dir = tmp_path / "index"
    acked: list[str] = []
    removed: set[str] = set()  # acknowledged removes
    attempted: set[str] = set()  # removes sent, acknowledged or not
    rng = np.random.default_rng(0)
    n = 0
    segments: list[int] = []
    for round_ in range(ROUNDS):
        log = open(tmp_path / f"server-{round_}.log", "w")
        proc, address = start(index_dir, log)
        stop = threading.Event()

        def writer(address=address, stop=stop) -> None:
            nonlocal n
            with SearchClient(address, timeout=10) as client:
                while not stop.is_set():
                    batch = [f"img-{n + j:05d}" for j in range(3)]
                    try:
                        client.add_images([ImageToAdd(i, "x", features(int(i[4:]))) for i in batch])
                    except LandmarkError:
                        return  # the server died mid-call: not acknowledged
                    acked.extend(batch)
                    n += 3
                    if len(acked) % 12 == 0:  # remove some, acknowledged too
                        victim = acked[len(acked) // 2]
                        attempted.add(victim)  # may apply even if the answer is lost
                        try:
                            client.remove_images([victim])
                        except LandmarkError:
                            return
                        removed.add(victim)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(float(rng.uniform(0.3, 2.0)))
        os.kill(proc.pid, signal.SIGKILL)  # at any moment: mid-add, mid-seal, mid-merge
        proc.wait()
        stop.set()
        thread.join()

        proc, address = start(index_dir, log)
        try:
            with SearchClient(address, timeout=30) as client:
                present = {r.image_id for r in client.list_images()}
                missing = [i for i in acked if i not in present and i not in attempted]
                assert not missing, f"round {round_}: acknowledged adds lost: {missing[:5]}"
                assert not (removed & present), f"round {round_}: removed images came back"
                probe = next(i for i in reversed(acked) if i not in attempted)
                result = client.search(features(int(probe[4:])), top_k=3)
                assert result.best is not None and result.best.image_id == probe
                segments.append(client.index_info().segments)
        except AssertionError:
            log.flush()
            print((tmp_path / f"server-{round_}.log").read_text()[-5000:])
            raise
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()
    print(
        f"\nkill -9 during writes, seals and merges: {ROUNDS} rounds, {len(acked)} acknowledged"
        f" adds, {len(removed)} acknowledged removes, 0 lost"
    )
    assert len(acked) > 50  # the test really wrote while killing
    assert max(segments) >= 1  # ... and sealed segments while being killed
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp")]
    assert not leftovers


@pytest.mark.parametrize("junk", ["MANIFEST"])
def test_a_corrupt_manifest_stops_the_service_with_a_message(tmp_path, junk):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / junk).write_text("{ not json")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search_service",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--index-dir",
            str(index_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "MANIFEST is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
