"""Figures from a results folder: learning curves and accuracy (or MSE) against shots.

Learning curves: one figure per benchmark, training loss and validation score against the step,
one line per learner (mean over training seeds). Score against shots: for each dataset and number
of ways, every learner's test score at each shot count found (benchmarks that differ only in shots,
and the ``eval.shots`` extra evaluations of a suite), with 95% CI error bars.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from metazoo._optional import require
from metazoo.bench.results import load_results

__all__ = ["plot_results", "learning_curves", "score_vs_shots"]


def _pyplot():
    # matplotlib is the `plotting` extra: imported here, when a figure is drawn, never at import
    matplotlib = require("matplotlib", "plotting", "metazoo plot")
    matplotlib.use("Agg")  # files only: no display needed
    return require("matplotlib.pyplot", "plotting", "metazoo plot")


def _mean_curve(histories: list[list[dict[str, Any]]], kind: str, key: str) -> tuple[list, list]:
    by_step: dict[int, list[float]] = defaultdict(list)
    for history in histories:
        for entry in history:
            if entry.get("kind") == kind and entry.get(key) is not None:
                by_step[entry["step"]].append(entry[key])
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def learning_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, list[list]]]:
    """``{benchmark: {learner: [[train steps, losses], [val steps, val means], metric]}}``."""
    runs: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    metric: dict[str, str] = {}
    for record in records:
        if record.get("status") == "ok":
            runs[record["benchmark"]][record["learner"]].append(record["train"]["history"])
            metric[record["benchmark"]] = record["result"]["metric"]
    return {
        bench: {
            learner: [
                list(_mean_curve(h, "train", "loss")),
                list(_mean_curve(h, "val", "mean")),
                metric[bench],
            ]
            for learner, h in learners.items()
        }
        for bench, learners in runs.items()
    }


def score_vs_shots(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, tuple]]]:
    """``{"<dataset> <N>-way": {learner: {shots: (mean, ci95)}}}``, first training seed only."""
    from metazoo.cards import benchmark_card

    groups: dict[str, dict[str, dict[int, tuple]]] = defaultdict(lambda: defaultdict(dict))
    for record in sorted(records, key=lambda r: -r["seed"]):  # seed 0 written last, so it wins
        if record.get("status") != "ok":
            continue
        result, card = record["result"], benchmark_card(record["benchmark"])
        ways = result["protocol"].get("ways")
        group = f"{card['dataset']} {ways}-way" if ways else card["dataset"]
        points = groups[group][record["learner"]]
        points[result["protocol"]["shots"]] = (result["mean"], result["ci95"], result["metric"])
        for shots, extra in (record.get("by_shots") or {}).items():
            points[int(shots)] = (extra["mean"], extra["ci95"], result["metric"])
    return {g: dict(v) for g, v in groups.items()}


def _save(fig, out: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        fig.savefig(path, bbox_inches="tight", dpi=150)
        paths.append(path)
    return paths


def _save_curves(
    plt, bench: str, learners: dict, out: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Training loss, and validation score when any learner was validated, against the step."""
    validated = any(val[0] for _, val, _ in learners.values())
    fig, axes = plt.subplots(1, 2 if validated else 1, figsize=(10 if validated else 5, 3.6))
    left = axes[0] if validated else axes
    metric = next(iter(learners.values()))[2]
    for learner, (train, val, _) in learners.items():
        left.plot(*train, label=learner)
        if validated and val[0]:
            axes[1].plot(*val, marker="o", label=learner)
    left.set(
        title=f"{bench}: training loss", xlabel="step", ylabel="meta-loss (each learner's own)"
    )
    left.legend(fontsize="small")
    if validated:
        ylabel = "accuracy (%)" if metric == "accuracy" else "MSE"
        axes[1].set(title=f"{bench}: validation", xlabel="step", ylabel=ylabel)
    paths = _save(fig, out, f"curves-{bench}", formats)
    plt.close(fig)
    return paths


def plot_results(
    folder: str | Path, out: str | Path, formats: tuple[str, ...] = ("png", "pdf")
) -> list[Path]:
    """Write ``curves-<benchmark>.<fmt>`` and ``shots-<group>.<fmt>`` into ``out``; returns the paths."""
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = load_results(folder)
    paths: list[Path] = []
    for bench, learners in learning_curves(records).items():
        paths += _save_curves(plt, bench, learners, out, formats)
    for group, learners in score_vs_shots(records).items():
        if max(len(points) for points in learners.values()) < 2:
            continue  # one shot count: nothing to draw a line through
        fig, ax = plt.subplots(figsize=(5, 3.6))
        metric = "accuracy"
        for learner, points in learners.items():
            shots = sorted(points)
            metric = points[shots[0]][2]
            ax.errorbar(
                shots,
                [points[s][0] for s in shots],
                yerr=[points[s][1] or 0 for s in shots],
                marker="o",
                capsize=3,
                label=learner,
            )
        ax.set(
            title=group, xlabel="shots", ylabel="accuracy (%)" if metric == "accuracy" else "MSE"
        )
        ax.legend(fontsize="small")
        paths += _save(fig, out, f"shots-{group.replace(' ', '-')}", formats)
        plt.close(fig)
    return paths
