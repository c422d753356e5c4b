"""docs/speed.md shows exactly what the committed speed result files say."""

from __future__ import annotations

from pathlib import Path

from metazoo.perf.docs import update_speed_docs

REPO = Path(__file__).resolve().parents[3]


def test_speed_page_is_generated_from_the_committed_results():
    assert update_speed_docs(
        REPO / "docs" / "speed.md", REPO / "benchmarks" / "results", check=True
    ), "docs/speed.md is stale: run `metazoo speed --docs-only` and commit it"
