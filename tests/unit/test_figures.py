"""Every measured figure README.md and docs/ show comes from a committed result file in
bench/results: the tables are generated into the text (bench/figures.py), and the figures
quoted in prose are checked here against the file they come from."""

import json

import pytest

from bench import figures
from tests.conftest import REPO


def _result(name: str) -> dict:
    return json.loads((REPO / "bench" / "results" / name).read_text())


@pytest.mark.parametrize("name, path", figures.places(), ids=lambda p: getattr(p, "name", p))
def test_each_generated_block_is_what_the_result_files_give(name, path):
    assert figures.current(name, path) is not None, f"no <!-- figures:{name} --> in {path}"
    assert figures.current(name, path) == figures.rendered(name), (
        f"the {name} figures in {path.name} are stale: run `make figures`"
    )


def test_a_changed_result_shows_as_a_stale_block(monkeypatch):
    real = figures._load

    def changed(name: str) -> dict:
        result = real(name)
        if name == "bench.json":
            result["search"][0]["in_process"]["p50_ms"] += 1
        return result

    monkeypatch.setattr(figures, "_load", changed)
    assert ("search", figures.README) in figures.stale()


def _rate(backend: str, px: int = 1024) -> float:
    return next(
        e["images_per_s"]
        for e in _result("bench.json")["extraction"]
        if e["backend"] == backend and e.get("threads") == 2 and e["max_image_size"] == px
    )


def test_the_figures_quoted_in_prose_are_the_result_files():
    quality = " ".join((REPO / "docs" / "quality.md").read_text().split())
    assert f"`make bench`: {_rate('sift')} against {_rate('aliked')} photos/s" in quality
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"`make bench`: {_rate('aliked')} against {_rate('sift')} photos/s" in readme
    merge = _result("ingest.json")["under_merge"]
    design = " ".join((REPO / "docs" / "index-design.md").read_text().split())
    ratio = merge["merging"]["search"]["p50_ms"] / merge["idle"]["search"]["p50_ms"]
    said = f"searches take {ratio:.1f} times their time and the same merge {merge['merge_s']:.0f} s"
    assert said in design


def test_the_committed_report_is_what_the_result_files_give(tmp_path):
    from bench.report import write_all

    write_all(tmp_path / "REPORT.md")
    committed = (REPO / "bench" / "results" / "REPORT.md").read_text()
    assert (tmp_path / "REPORT.md").read_text() == committed, "run `make figures`"
