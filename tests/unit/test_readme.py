"""The README's tables of serve flags and environment variables match the code."""

import dataclasses
import re

from extractor_service.config import ExtractorConfig
from landmark_client.cli import build_parser
from search_service.config import SearchConfig
from search_service.coordinator import CoordinatorConfig
from tests.conftest import REPO


def _serve_flags() -> set[str]:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # noqa: SLF001
    flags = set()
    for sub in serve._subparsers._group_actions[0].choices.values():  # noqa: SLF001
        flags |= {o for a in sub._actions for o in a.option_strings if o.startswith("--")}
    return flags - {"--help"}


def test_every_serve_flag_is_in_the_readme_and_back():
    text = (REPO / "README.md").read_text()
    documented = set(re.findall(r"`(--[a-z-]+)`", text))
    flags = _serve_flags()
    assert flags - documented == set(), "serve flags missing from the README"
    table = text[text.index("| service | flag |") : text.index("## Operations")]
    assert set(re.findall(r"`(--[a-z-]+)`", table)) - flags == set(), "README names no flag"


def test_every_service_environment_variable_is_in_the_readme():
    text = (REPO / "README.md").read_text()
    for cls in (ExtractorConfig, SearchConfig, CoordinatorConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata["env"] in text, f"{f.metadata['env']} ({cls.__name__}.{f.name})"
