"""The arrows between the packages, read from the source (an AST walk of every import):

    landmark (the contract, protos/: stubs, wire codec, connection)
      ^                 ^
    landmark_client     serving  <-  extractor_service, search_service
    (the SDK)

The SDK never imports a server package, no server imports the SDK, serving imports no
service, and the two services do not import each other. Inside the search service, the
index (the write path and storage) never imports the search (the read path), and the
search reads only the index's read-only view; engine, server, config and the coordinator
sit above both. No module imports itself through others: there is no circle anywhere.
Hand-written modules stay small.
"""

import ast
from collections.abc import Iterator
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


# Where each first-party package lives (a module's name is its path from that folder).
ROOTS = {
    "landmark": "protos",
    "landmark_client": "client",
    "serving": ".",
    "extractor_service": ".",
    "search_service": ".",
    "bench": ".",
    "tests": ".",
}
# Inside search_service: what the index and the search may import of the service.
MAY_IMPORT = {
    "search_service.index": ("search_service.index", "search_service.errors"),
    "search_service.search": (
        "search_service.search",
        "search_service.index.images",  # the read-only view: the images' entries, ...
        "search_service.index.segment",  # ... the segments ...
        "search_service.index.view",  # ... the view a search reads ...
        "search_service.index.codebook",  # ... the visual words ...
        "search_service.index.inverted",  # ... and a segment's inverted file
        "search_service.errors",
    ),
}


def _name(path: Path) -> str:
    for package, root in ROOTS.items():
        base = (REPO / root).resolve()
        if path.is_relative_to(base / package):
            parts = path.relative_to(base).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise AssertionError(f"{path} is in no known package")


def _first_party() -> dict[str, Path]:
    files = [p for package, root in ROOTS.items() for p in (REPO / root / package).rglob("*.py")]
    return {_name(p.resolve()): p for p in files if "/v1/" not in p.as_posix()}


def _targets(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The first-party modules ``module`` imports (anywhere in it, under TYPE_CHECKING
    too): ``from a import b`` names a.b when that is a module, else a."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            bases, names = [a.name for a in node.names], []
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            if node.level == 0:
                base = []
            bases = [".".join([*base, *(node.module or "").split(".")]).strip(".")]
            names = [a.name for a in node.names]
        else:
            continue
        for base in bases:
            found = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            if len(found) < len(names) or not names:
                found.append(base)
            yield from (f for f in found if f in known and f != module)


def _graph() -> dict[str, set[str]]:
    known = _first_party()
    return {m: set(_targets(m, p, known)) for m, p in known.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle, as the modules around it (empty: none)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_the_walk_resolves_relative_imports_to_modules():
    graph = _graph()
    assert "search_service.index.segment" in graph["search_service.search.lookup"]
    assert "search_service.search.blas" in graph["search_service.search.lookup"]  # from . import
    assert "search_service.index.store" in graph["search_service.index.wiring"]
    assert "search_service.errors" in graph["search_service.index.segment"]  # from ..errors


def test_no_import_circle_anywhere_in_the_tree():
    assert _cycle(_graph()) == []


def test_a_circle_is_found_where_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_the_index_and_the_search_import_only_what_their_layer_allows(package):
    wrong = {
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module == package or module.startswith(package + ".")
        for target in targets
        if target.startswith("search_service")
        and not any(target == a or target.startswith(a + ".") for a in MAY_IMPORT[package])
    }
    assert wrong == set()


def test_the_coordinator_loads_neither_the_engine_nor_an_index():
    """A coordinator holds no index: its process loads neither Annoy nor the write path."""
    import subprocess
    import sys

    probe = (
        "import sys, search_service.config, search_service.coordinator.servicer\n"
        "print(sorted(m for m in sys.modules if m in ('annoy', 'search_service.engine')\n"
        "      or m.startswith('search_service.index.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.strip()
        == "['search_service.index.images', 'search_service.index.store_settings']"
    )
