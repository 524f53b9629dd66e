"""The arrows between the packages, read from the source (an AST walk of every import):

    landmark (the contract, protos/: stubs, wire codec, connection)
      ^                 ^
    landmark_client     serving  <-  extractor_service, search_service
    (the SDK)

The SDK never imports a server package, no server imports the SDK, serving imports no
service, and the two services do not import each other. Hand-written modules stay small.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

SERVERS = {"extractor_service", "search_service", "serving"}
FORBIDDEN = {
    "client/landmark_client": SERVERS,
    "protos/landmark": SERVERS | {"landmark_client"},
    "serving": {"landmark_client", "extractor_service", "search_service"},
    "extractor_service": {"landmark_client", "search_service"},
    "search_service": {"landmark_client", "extractor_service"},
}
MAX_LINES = 300


def _modules(folder: str) -> list[Path]:
    return [p for p in sorted((REPO / folder).rglob("*.py")) if "/v1/" not in p.as_posix()]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_arrow_runs_the_wrong_way(folder):
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in _modules(folder)
        for name in _imports(path) & FORBIDDEN[folder]
    }
    assert wrong == set()


def test_the_walk_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from search_service.engine import SearchEngine\n")
    assert "search_service" in _imports(module)


def test_no_hand_written_module_is_over_300_lines():
    folders = ["client/landmark_client", "protos/landmark", "serving", "extractor_service"]
    folders += ["search_service", "bench"]
    long = {
        str(p.relative_to(REPO)): n
        for folder in folders
        for p in _modules(folder)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
