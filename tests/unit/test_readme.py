"""The README's settings table is the one the settings classes generate, the services'
--help shows the same defaults, and every flag the README names exists."""

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


def test_every_flag_the_readme_names_exists():
    flags = {
        f"--{f.name.replace('_', '-')}"
        for cls in settings_table.SERVICES.values()
        for f in dataclasses.fields(cls)
    }
    cli = {"--extractor", "--search", "--timeout", "--top-k", "--json", "--out", "--gallery"}
    cli |= {"--groups", "--pr-plot", "--distractor-label", "--backend", "--delf-model", "--help"}
    text = (REPO / "README.md").read_text()
    named = set(re.findall(r"`(--[a-z][a-z-]+)", text))
    assert named - flags - cli == set()
