"""Figures from a results folder: learning curves and accuracy (or MSE) against shots.

Learning curves: one figure per benchmark, training loss (smoothed: an exponential moving
average) and validation score against the step, one line per learner (mean over training seeds,
a band of ± one standard deviation where there are several). A learner has the same colour in
every figure. Score against shots: for each dataset and number
of ways, every learner's test score at each shot count found (benchmarks that differ only in shots,
and the ``eval.shots`` extra evaluations of a suite), with 95% CI error bars.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from metazoo._optional import require
from metazoo.bench.results import load_results

__all__ = ["plot_results", "learning_curves", "score_vs_shots", "learner_colours", "smooth"]

#: weight of the previous value in the training-curve smoothing (exponential moving average).
SMOOTHING = 0.6


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average of ``values``: ``s_t = weight * s_{t-1} + (1 - weight) * v_t``."""
    out: list[float] = []
    for value in values:
        out.append(value if not out else weight * out[-1] + (1 - weight) * value)
    return out


def learner_colours(records: list[dict[str, Any]]) -> dict[str, str]:
    """One matplotlib colour (``C0``, ``C1``, ...) per learner of the folder, by sorted name, so
    a learner keeps its colour in every figure."""
    names = sorted({r["learner"] for r in records if "learner" in r})
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def _pyplot():
    # matplotlib is the `plotting` extra: imported here, when a figure is drawn, never at import
    matplotlib = require("matplotlib", "plotting", "metazoo plot")
    matplotlib.use("Agg")  # files only: no display needed
    return require("matplotlib.pyplot", "plotting", "metazoo plot")


def _mean_curve(histories: list[list[dict[str, Any]]], kind: str, key: str) -> tuple[list, list]:
    steps, means, _ = _curve_with_spread(histories, kind, key)
    return steps, means


def _curve_with_spread(histories: list[list[dict[str, Any]]], kind: str, key: str):
    """``(steps, means, stds)`` over the runs (std 0 for one run)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for history in histories:
        for entry in history:
            if entry.get("kind") == kind and entry.get(key) is not None:
                by_step[entry["step"]].append(entry[key])
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    stds = [
        (sum((v - m) ** 2 for v in by_step[s]) / max(len(by_step[s]) - 1, 1)) ** 0.5
        for s, m in zip(steps, means)
    ]
    return steps, means, stds


def learning_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, list[list]]]:
    """``{benchmark: {learner: [[train steps, losses], [val steps, val means, val stds],
    metric]}}`` (means and stds over training seeds)."""
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
                list(_curve_with_spread(h, "val", "mean")),
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
    plt, bench: str, learners: dict, out: Path, formats: tuple[str, ...], colours: dict[str, str]
) -> list[Path]:
    """Training loss (smoothed), and validation score when any learner was validated, against
    the step, with a ± one standard deviation band over seeds."""
    from metazoo.cards import display_name

    validated = any(val[0] for _, val, _ in learners.values())
    fig, axes = plt.subplots(1, 2 if validated else 1, figsize=(10 if validated else 5, 3.6))
    left = axes[0] if validated else axes
    metric = next(iter(learners.values()))[2]
    for learner, (train, val, _) in learners.items():
        colour, name = colours.get(learner), display_name(learner)
        left.plot(train[0], smooth(train[1]), color=colour, label=name)
        if validated and val[0]:
            steps, means, stds = val
            axes[1].plot(steps, means, marker="o", color=colour, label=name)
            if any(stds):
                low = [m - s for m, s in zip(means, stds)]
                high = [m + s for m, s in zip(means, stds)]
                axes[1].fill_between(steps, low, high, color=colour, alpha=0.2)
    left.set(
        title=f"{bench}: training loss (smoothed)",
        xlabel="step",
        ylabel="meta-loss (each learner's own)",
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
    colours = learner_colours(records)
    paths: list[Path] = []
    for bench, learners in learning_curves(records).items():
        paths += _save_curves(plt, bench, learners, out, formats, colours)
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
                color=colours.get(learner),
                label=learner,
            )
        ax.set(
            title=group, xlabel="shots", ylabel="accuracy (%)" if metric == "accuracy" else "MSE"
        )
        ax.legend(fontsize="small")
        paths += _save(fig, out, f"shots-{group.replace(' ', '-')}", formats)
        plt.close(fig)
    return paths
