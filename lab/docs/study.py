"""Paired contrasts of a study suite: each training condition against the reference condition.

A study suite (e.g. ``registry/suites/study-tasks.yaml``) names its runs' variants
``<condition>@<budget>`` (``train-train@300``). Every cell is evaluated on the same test episodes,
so each condition is compared with the reference condition of the same learner, benchmark and
budget by a paired t-test over episodes (:func:`metazoo.evaluation.compare`). Run as
``python -m lab.docs.study RESULTS [--reference COND] [--out DIR]`` to print the table and
write ``study.md`` and ``study.png`` (the figure needs the ``plotting`` extra).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from metazoo.bench.results import Aggregate, as_result, collect
from metazoo.evaluation import compare

__all__ = ["Contrast", "contrasts", "to_markdown", "findings", "plot_study", "main"]


@dataclass(frozen=True)
class Contrast:
    """One condition of a learner on a benchmark at one budget, against the reference condition."""

    benchmark: str
    learner: str
    budget: int
    condition: str
    metric: str
    mean: float
    ci95: float
    #: Mean of the per-episode differences (condition - reference) and its 95% interval half-width.
    difference: float
    difference_ci95: float
    p_value: float
    episodes: int
    #: True for accuracy, False for MSE (the cell's own direction).
    higher_is_better: bool = True


def _split(label: str) -> tuple[str, str, int] | None:
    """``maml+train-train@300`` -> ``("maml", "train-train", 300)``; None without a variant."""
    learner, _, variant = label.partition("+")
    condition, _, budget = variant.rpartition("@")
    if not condition or not budget.isdigit():
        return None
    return learner, condition, int(budget)


def contrasts(folder: str | Path, reference: str = "train-val") -> list[Contrast]:
    """Every condition of the study in ``folder`` against ``reference`` (itself included, at 0).

    Raises:
        ValueError: when a learner, benchmark and budget has no ``reference`` cell.
    """
    cells = collect(folder).cells
    parsed = {key: _split(key[0]) for key in cells}
    found = []
    for (label, benchmark), cell in cells.items():
        if parsed[(label, benchmark)] is None:
            continue
        learner, condition, budget = parsed[(label, benchmark)]
        base = cells.get((f"{learner}+{reference}@{budget}", benchmark))
        if base is None:
            raise ValueError(
                f"{label} on {benchmark}: no {reference!r} cell at budget {budget} to pair with; "
                f"run the whole suite, or pass --reference with a condition it has"
            )
        found.append(_contrast(benchmark, learner, budget, condition, cell, base))
    return sorted(found, key=lambda c: (c.benchmark, c.learner, c.budget, c.condition))


def _contrast(
    benchmark: str, learner: str, budget: int, condition: str, cell: Aggregate, base: Aggregate
) -> Contrast:
    paired = compare(as_result(cell), as_result(base))
    return Contrast(
        benchmark, learner, budget, condition, cell.metric, cell.mean, cell.ci95,
        paired.mean_diff, paired.ci95, paired.p_value, paired.n, cell.higher_is_better,
    )  # fmt: skip


def to_markdown(rows: list[Contrast], reference: str = "train-val") -> str:
    """The contrasts as a Markdown table (differences are condition minus ``reference``)."""
    lines = [
        f"| benchmark | learner | budget (steps) | condition | test score ± 95% CI "
        f"| difference vs {reference} ± 95% CI | p (paired t) | episodes |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for c in rows:
        digits = 2 if c.metric == "accuracy" else 3
        p = "–" if c.condition == reference else f"{c.p_value:.3g}"
        lines.append(
            f"| {c.benchmark} | {c.learner} | {c.budget} | {c.condition} | "
            f"{c.mean:.{digits}f} ± {c.ci95:.{digits}f} | "
            f"{c.difference:+.{digits}f} ± {c.difference_ci95:.{digits}f} | {p} | {c.episodes} |"
        )
    return "\n".join(lines) + "\n"


def findings(rows: list[Contrast], reference: str = "train-val", alpha: float = 0.05) -> list[str]:
    """One sentence per condition: its difference from ``reference`` and whether the paired test
    tells them apart at ``alpha`` (two-sided), for the docs page (generated, never typed)."""
    lines = []
    for c in rows:
        if c.condition == reference:
            continue
        digits = 2 if c.metric == "accuracy" else 3
        unit = " points" if c.metric == "accuracy" else ""
        better = (c.difference > 0) == c.higher_is_better
        if c.p_value < alpha:
            verdict = "better than" if better else "worse than"
        else:
            verdict = "not distinguishable from"
        lines.append(
            f"- {c.learner} on {c.benchmark} after {c.budget} steps: `{c.condition}` is {verdict} "
            f"`{reference}` ({c.metric} {c.difference:+.{digits}f} ± {c.difference_ci95:.{digits}f}"
            f"{unit}, p = {c.p_value:.2g}, {c.episodes} paired episodes)."
        )
    return lines


def plot_study(rows: list[Contrast], out: Path) -> Path:
    """Test score against budget, one panel per (benchmark, learner), one line per condition."""
    from metazoo.bench.plot import _pyplot

    plt = _pyplot()
    panels = sorted({(c.benchmark, c.learner) for c in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (benchmark, learner) in zip(axes[0], panels):
        mine = [c for c in rows if (c.benchmark, c.learner) == (benchmark, learner)]
        for condition in sorted({c.condition for c in mine}):
            line = sorted((c for c in mine if c.condition == condition), key=lambda c: c.budget)
            ax.errorbar([c.budget for c in line], [c.mean for c in line],
                        yerr=[c.ci95 for c in line], marker="o", capsize=3, label=condition)  # fmt: skip
        ax.set_title(f"{learner} on {benchmark}")
        ax.set_xlabel("training steps")
        ax.set_ylabel(mine[0].metric + (" (%)" if mine[0].metric == "accuracy" else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "study.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.docs.study RESULTS [--reference COND] [--out DIR] [--no-figure]``."""
    parser = argparse.ArgumentParser(prog="python -m lab.docs.study", description=__doc__)
    parser.add_argument("results", help="a study suite's results folder (metazoo bench --out)")
    parser.add_argument("--reference", default="train-val", help="the condition compared against")
    parser.add_argument(
        "--out", help="where to write study.md and study.png (default RESULTS/tables)"
    )
    parser.add_argument("--no-figure", action="store_true", help="write the table only")
    args = parser.parse_args(argv)
    rows = contrasts(args.results, args.reference)
    table = to_markdown(rows, args.reference)
    print(table, end="")
    out = Path(args.out or Path(args.results) / "tables")
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.md").write_text(table, encoding="utf-8")
    if not args.no_figure:
        print(f"figure: {plot_study(rows, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
