"""The deployment files: Kubernetes manifests validate offline against the 1.37 schemas
(kubernetes-validate ships them), the compose file parses, and they agree with the code."""

import subprocess
import sys

import yaml

from tests.conftest import REPO

K8S = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))


def test_manifests_validate_strictly():
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.37.0", *map(str, K8S)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == 10


def _docs():
    return [d for path in K8S for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_topology_the_issue_asks_for():
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in _docs()}
    extractor = kinds[("Deployment", "extractor")]["spec"]["template"]["spec"]["containers"][0]
    assert extractor["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ("HorizontalPodAutoscaler", "extractor") in kinds
    search = kinds[("StatefulSet", "search")]["spec"]
    assert search["volumeClaimTemplates"] and search["serviceName"] == "search"
    assert kinds[("Service", "search")]["spec"]["clusterIP"] == "None"
    for name in [
        ("Deployment", "extractor"),
        ("StatefulSet", "search"),
        ("Deployment", "coordinator"),
    ]:
        container = kinds[name]["spec"]["template"]["spec"]["containers"][0]
        assert "grpc" in container["readinessProbe"] and "grpc" in container["livenessProbe"]
    coordinator = kinds[("Deployment", "coordinator")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in coordinator["containers"][0]["env"]}
    shards = int(env["LANDMARK_SHARD_COUNT"])
    assert search["replicas"] == 2 * shards  # two replicas of each shard
    command = " ".join(search["template"]["spec"]["containers"][0]["args"])
    assert f"% {shards} ))" in command and f"--shard-count {shards}" in command
    nats = kinds[("StatefulSet", "nats")]["spec"]
    assert nats["replicas"] == 3 and nats["volumeClaimTemplates"]  # JetStream R=3
    routes = kinds[("ConfigMap", "nats")]["data"]["nats.conf"]
    assert all(
        f"nats-{i}.nats" in routes and f"nats://nats-{i}.nats:4222" in command for i in range(3)
    )


def test_compose_file_parses_and_names_its_shards():
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    shards = [n for n in services if n.startswith("search-")]
    command = services["coordinator"]["command"]
    assert command[0] == "landmark-coordinator"
    assert command[2] == ",".join(f"{n}:50052" for n in shards)
    for n, name in enumerate(shards):
        assert services[name]["command"] == ["landmark-search", "--shard-index", str(n)]


def test_the_commands_the_images_run_are_the_projects_console_scripts():
    import re
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    used = set()
    for path in [*(REPO / "deploy").glob("Dockerfile.*"), *K8S, REPO / "deploy/docker-compose.yml"]:
        used |= set(re.findall(r"\blandmark-[a-z]+\b", path.read_text()))
    used -= {"landmark-tokens"}  # a Kubernetes secret; image names equal the scripts' names
    assert used <= set(scripts), used - set(scripts)
    assert {"landmark-extractor", "landmark-search", "landmark-coordinator"} <= used
    for target in scripts.values():  # each names a function that exists
        module, func = target.split(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func))
