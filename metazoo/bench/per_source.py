"""Per-source results, as Meta-Dataset's leaderboard reports them: for each source, the mean
accuracy over 600 fixed test episodes of that source and its 95% interval.

:func:`evaluate_per_source` runs the harness once per test source (each source's episodes are
seeded by ``<benchmark>/<source>``, the same ones the multi-source sampler draws);
:func:`save_per_source` writes the results to one JSON file and :func:`per_source_table` renders
learners x sources (Markdown or CSV) from such files, with the mean over sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from metazoo._atomic import write_json_atomic
from metazoo.cards import benchmark_card
from metazoo.evaluation import EvalResult, evaluate

__all__ = [
    "test_sources",
    "evaluate_per_source",
    "save_per_source",
    "per_source_table",
    "per_source_files",
]


def test_sources(benchmark: str) -> list[str]:
    """The sources a Meta-Dataset benchmark card tests on (``test_sources``, else ``sources``)."""
    options = benchmark_card(benchmark).get("dataset_options") or {}
    sources = options.get("test_sources") or options.get("sources")
    if not sources:
        raise ValueError(
            f"benchmark {benchmark!r} names no sources: per-source results are for Meta-Dataset "
            "cards (dataset_options: sources / test_sources); use metazoo.evaluate for others"
        )
    return list(sources)


def evaluate_per_source(
    learner: nn.Module,
    benchmark: str,
    episodes: int = 600,
    seed: int = 0,
    sources: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, EvalResult]:
    """``evaluate`` on each test source alone: source -> its :class:`EvalResult`.

    Args:
        learner: any meta-learner.
        benchmark: a Meta-Dataset card (``metadataset``, ``metadataset-omniglot``, ...).
        episodes: test episodes per source (600 in Meta-Dataset).
        seed: sampler seed.
        sources: a subset of the card's test sources; None: all of them.
        **options: passed to :func:`metazoo.evaluate` (``device``, ``root``, ...).
    """
    chosen = list(sources) if sources is not None else test_sources(benchmark)
    unknown = sorted(set(chosen) - set(test_sources(benchmark)))
    if unknown:
        raise ValueError(
            f"{unknown} are not test sources of {benchmark!r}; choose from {test_sources(benchmark)}"
        )
    # the card's own key names the test sources (a single-source card has no test_sources)
    card_options = benchmark_card(benchmark).get("dataset_options") or {}
    key = "test_sources" if "test_sources" in card_options else "sources"
    return {
        source: evaluate(learner, benchmark, episodes, seed, **{key: [source]}, **options)
        for source in chosen
    }


def save_per_source(results: Mapping[str, EvalResult], path: str | Path) -> Path:
    """Write one learner's per-source results (with every episode's score) to ``path``."""
    first = next(iter(results.values()))
    data = {
        "learner": first.learner,
        "benchmark": first.benchmark,
        "sources": {source: r.to_dict() for source, r in results.items()},
    }
    return write_json_atomic(data, path)


def per_source_files(folder: str | Path) -> list[Path]:
    """The per-source result files (written by :func:`save_per_source`) directly in ``folder``."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "sources" in data and "schema" not in data:
            found.append(path)
    return found


def _load(path: str | Path) -> tuple[str, dict[str, EvalResult]]:
    data = json.loads(Path(path).read_text())
    if "sources" not in data:
        raise ValueError(f"{path} is not a per-source result file (no 'sources'); write it with save_per_source")  # fmt: skip
    return data["learner"], {s: EvalResult.from_dict(r) for s, r in data["sources"].items()}


def per_source_table(paths: Sequence[str | Path], fmt: str = "md") -> str:
    """Learners (rows) x sources (columns) of ``mean ± ci95`` from per-source result files, with
    the mean over sources; ``fmt`` is ``md`` (Markdown) or ``csv``."""
    if fmt not in ("md", "csv"):
        raise ValueError(f"fmt must be 'md' or 'csv', got {fmt!r}")
    if not paths:
        raise ValueError("per_source_table needs at least one result file from save_per_source")
    rows = dict(_load(p) for p in paths)
    sources = list(dict.fromkeys(s for by in rows.values() for s in by))
    header = ["learner", *sources, "mean over sources"]
    lines = []
    for learner, by_source in rows.items():
        cells = [_cell(by_source.get(s), fmt) for s in sources]
        means = [r.mean for r in by_source.values()]
        lines.append([learner, *cells, f"{sum(means) / len(means):.2f}"])
    if fmt == "csv":
        return "\n".join(",".join(row) for row in [header, *lines]) + "\n"
    rule = ["---"] * len(header)
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, rule, *lines]) + "\n"


def _cell(result: EvalResult | None, fmt: str) -> str:
    if result is None:
        return ""
    if fmt == "csv":
        return f"{result.mean:.2f} ± {result.ci95:.2f}"
    return f"{result.mean:.2f} ± {result.ci95:.2f} ({result.n})"
