"""Generated sections of ``docs/speed.md``, rendered from the committed speed result files.

Sections use the README's markers (``<!-- metazoo:NAME -->`` ... ``<!-- /metazoo:NAME -->``,
see :mod:`metazoo.readme`): ``speed-summary`` (headline figures of every full run) and
``speed-targets`` (where each target of issue 7 stands, per run).
"""

from __future__ import annotations

import json
from pathlib import Path

from metazoo.perf.report import result_stem, summary_table, targets_table
from metazoo.readme import render_sections

__all__ = ["load_results", "update_speed_docs", "speed_sections"]


def load_results(results_dir: str | Path) -> list[dict]:
    """Every full (not ``--quick``) speed result document in ``results_dir``, by file name."""
    paths = sorted(Path(results_dir).glob("speed-*.json"))
    documents = [json.loads(p.read_text()) for p in paths]
    return [d for d in documents if d.get("mode") == "full"]


def speed_sections(documents: list[dict]) -> dict:
    """Renderers for the generated sections of ``docs/speed.md``."""

    def targets() -> str:
        if not documents:
            return "No full speed run is committed yet."
        parts = []
        for document in documents:
            parts += [f"`{result_stem(document)}`:", "", targets_table(document), ""]
        return "\n".join(parts)

    def summary() -> str:
        if not documents:
            return "No full speed run is committed yet."
        return summary_table(documents)

    return {"speed-summary": summary, "speed-targets": targets}


def update_speed_docs(
    path: str | Path, results_dir: str | Path = "benchmarks/results", check: bool = False
) -> bool:
    """Regenerate the sections of ``path`` from ``results_dir``; True when it was up to date."""
    path = Path(path)
    old = path.read_text()
    new = render_sections(old, speed_sections(load_results(results_dir)))
    if new != old and not check:
        path.write_text(new)
    return new == old
