"""docs/quality.md's overlay figures are the ones `make overlay-quality` measured."""

import json

from bench.common import RESULTS
from bench.overlay_quality import QUALITY_DOC, current, table


def test_the_overlay_table_is_generated_from_its_results():
    results = json.loads((RESULTS / "overlays.json").read_text())
    assert set(results["kinds"]) == {
        "clean",
        "watermark",
        "banner",
        "logo",
        "timestamp",
        "letterbox",
    }
    assert current(QUALITY_DOC.read_text()) == table(results), (
        "docs/quality.md's overlay table differs from bench/results/overlays.json: "
        "run `make overlay-quality`"
    )
