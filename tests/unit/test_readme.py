"""The README's settings table is the one the settings classes generate, the services'
--help shows the same defaults, and every flag the README names exists."""

import argparse
import dataclasses
import re
import subprocess
import sys

import pytest

from tests import settings_table
from tests.conftest import REPO


def test_the_settings_table_is_generated_from_the_settings_classes():
    text = (REPO / "README.md").read_text()
    assert settings_table.current(text) == settings_table.table(), (
        "the README's settings table is stale: run `make readme-settings`"
    )


@pytest.mark.parametrize(
    "module, service",
    [
        ("extractor_service", "extractor"),
        ("search_service", "search"),
        ("search_service.coordinator", "coordinator"),
    ],
)
def test_help_shows_each_default_declared_once(module, service):
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    out = " ".join(out.split())  # argparse wraps lines
    for f in dataclasses.fields(settings_table.SERVICES[service]):
        if not f.metadata.get("flag", True):
            assert f"--{f.name.replace('_', '-')}" not in out  # secrets stay out of `ps`
            continue
        default = settings_table.describe(f.default)
        assert f"(default: {default}; env {f.metadata['env']})" in out, f.name


# Flags of other tools the README's commands use (`ruff format --check`)
FOREIGN = {"--check"}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands' parsers."""
    found = set()
    for action in parser._actions:  # argparse keeps no public list of them
        found |= {s for s in action.option_strings if s.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def _parsers_flags() -> set[str]:
    from landmark_client.cli import build_parser as cli_parser
    from search_service.changelog.__main__ import build_parser as changelog_parser
    from serving.launch import build_parser

    flags = _options(cli_parser()) | _options(changelog_parser())
    for name, cls in settings_table.SERVICES.items():
        flags |= _options(build_parser(cls, name, ""))
    return flags


def test_the_flags_come_from_the_parsers():
    flags = _parsers_flags()
    assert {"--index-dir", "--shards", "--pr-plot", "--delf-model", "--max-concurrent"} <= flags
    assert "--no-such-flag" not in flags


def test_every_flag_the_readme_names_exists():
    """In the prose, the tables and the fenced command blocks alike."""
    text = (REPO / "README.md").read_text()
    named = set(FLAG.findall(text))
    assert "--index-dir" in named and "--check" in named  # a fenced block's flags are read
    assert named - _parsers_flags() - FOREIGN == set()


def _text(path: str) -> str:
    return " ".join((REPO / path).read_text().split())  # line breaks as spaces


def test_the_docs_quote_the_index_defaults_the_code_declares():
    from search_service.index.store_settings import StoreSettings
    from search_service.search.lookup import NODES_PER_NEIGHBOUR

    s = StoreSettings()
    design, quality = _text("docs/index-design.md"), _text("docs/quality.md")
    segment = f"{s.n_trees} trees over a {s.projection_dim}-D PCA projection"
    assert segment in quality
    assert f"**{s.projection_dim}-D PCA projection** fitted" in design
    assert f"**{s.n_trees} trees**" in design
    nodes = f"{NODES_PER_NEIGHBOUR} nodes per neighbour kept ({5 * NODES_PER_NEIGHBOUR} for k = 5)"
    assert nodes in quality
    assert f"`LANDMARK_SEAL_DESCRIPTORS` ({s.seal_descriptors:,})" in design
    assert f"`LANDMARK_SEAL_SECONDS` ({s.seal_seconds:g} s)" in design
    assert f"`LANDMARK_MAX_GROWING_DESCRIPTORS` ({s.max_growing_descriptors:,})" in design


def test_the_python_version_is_stated_as_the_packages_require_it():
    import tomllib

    for project in ("pyproject.toml", "protos/pyproject.toml", "client/pyproject.toml"):
        meta = tomllib.loads((REPO / project).read_text())["project"]
        assert meta["requires-python"] == ">=3.11", project
    assert "Python 3.11 or newer" in _text("README.md")
