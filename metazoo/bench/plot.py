"""Figures from a results folder: learning curves and accuracy (or MSE) against shots.

Learning curves: one figure per benchmark, training loss (smoothed: an exponential moving
average) against the step, and validation score against the step and against the run's wall time
(``seconds`` of the history's validation entries), one line per learner (mean over training seeds,
a band of ± one standard deviation where there are several). A learner has the same colour in
every figure. Score against shots: for each dataset and number
of ways, every learner's test score at each shot count found (benchmarks that differ only in shots,
and the ``eval.shots`` extra evaluations of a suite), with 95% CI error bars.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metazoo._optional import require
from metazoo.bench.results import load_results

__all__ = [
    "plot_results",
    "learning_curves",
    "curves_figure",
    "Curves",
    "score_vs_shots",
    "learner_colours",
    "smooth",
]

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


@dataclass
class Curves:
    """One learner's learning curves on one benchmark: means (and standard deviations) over its
    training seeds at each logged step."""

    #: steps of the training log and the mean training loss at each (the learner's own loss).
    train_steps: list[int]
    train_loss: list[float]
    train_std: list[float]
    #: steps of the validations, the mean validation score at each and its spread over seeds.
    val_steps: list[int]
    val_mean: list[float]
    val_std: list[float]
    #: ``{step: mean wall seconds of the run when it validated}`` (histories that record it).
    val_seconds: dict[int, float]
    #: ``"accuracy"`` (%, higher is better) or ``"mse"`` (lower is better).
    metric: str


def _curve_with_spread(histories: list[list[dict[str, Any]]], kind: str, key: str):
    """``(steps, means, stds)`` of ``key`` in the ``kind`` entries, over the runs (std 0 for one)."""
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


def _curves(histories: list[list[dict[str, Any]]], metric: str) -> Curves:
    seconds_steps, seconds, _ = _curve_with_spread(histories, "val", "seconds")
    return Curves(
        *_curve_with_spread(histories, "train", "loss"),
        *_curve_with_spread(histories, "val", "mean"),
        dict(zip(seconds_steps, seconds)),
        metric,
    )


def learning_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, Curves]]:
    """``{benchmark: {learner: Curves}}`` of the folder's successful runs (over training seeds)."""
    runs: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    metric: dict[str, str] = {}
    for record in records:
        if record.get("status") == "ok":
            runs[record["benchmark"]][record["learner"]].append(record["train"]["history"])
            metric[record["benchmark"]] = record["result"]["metric"]
    return {
        bench: {learner: _curves(h, metric[bench]) for learner, h in learners.items()}
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


def _line_with_band(ax, xs, means, stds, colour: str | None, label: str, **style) -> None:
    """A line of means, and a band of ± one standard deviation where there is any spread."""
    ax.plot(xs, means, color=colour, label=label, **style)
    if any(stds):
        low = [m - s for m, s in zip(means, stds)]
        high = [m + s for m, s in zip(means, stds)]
        ax.fill_between(xs, low, high, color=colour, alpha=0.2, linewidth=0)


def curves_figure(plt, bench: str, learners: dict[str, Curves], colours: dict[str, str]):
    """The figure of one benchmark: training loss (smoothed) against the step, and where any
    learner was validated its validation score against the step and against wall time (where
    the histories record it); one colour per learner, bands of ± one standard deviation over
    seeds. Returns the matplotlib figure."""
    from metazoo.cards import display_name

    validated = any(c.val_steps for c in learners.values())
    timed = any(c.val_seconds for c in learners.values())
    panels = 1 + validated + (validated and timed)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    axes = axes[0]
    metric = next(iter(learners.values())).metric
    ylabel = "accuracy (%)" if metric == "accuracy" else "MSE"
    for learner, c in learners.items():
        colour, name = colours.get(learner), display_name(learner)
        _line_with_band(axes[0], c.train_steps, smooth(c.train_loss), smooth(c.train_std),
                        colour, name)  # fmt: skip
        if c.val_steps:
            _line_with_band(axes[1], c.val_steps, c.val_mean, c.val_std, colour, name, marker="o")
        timed_steps = [s for s in c.val_steps if s in c.val_seconds]
        if timed_steps and panels == 3:
            at = [c.val_steps.index(s) for s in timed_steps]
            seconds = [c.val_seconds[s] for s in timed_steps]
            _line_with_band(axes[2], seconds, [c.val_mean[i] for i in at],
                            [c.val_std[i] for i in at], colour, name, marker="o")  # fmt: skip
    axes[0].set(title=f"{bench}: training loss (smoothed)", xlabel="step",
                ylabel="meta-loss (each learner's own)")  # fmt: skip
    if validated:
        axes[1].set(title=f"{bench}: validation", xlabel="step", ylabel=ylabel)
    if panels == 3:
        axes[2].set(title=f"{bench}: validation", xlabel="wall time (s)", ylabel=ylabel)
    for ax in axes:
        ax.legend(fontsize="small")
    return fig


def _save_curves(
    plt, bench: str, learners: dict, out: Path, formats: tuple[str, ...], colours: dict[str, str]
) -> list[Path]:
    fig = curves_figure(plt, bench, learners, colours)
    paths = _save(fig, out, f"curves-{bench}", formats)
    plt.close(fig)
    return paths


def plot_results(
    folder: str | Path, out: str | Path, formats: tuple[str, ...] = ("png", "pdf")
) -> list[Path]:
    """Write ``curves-<benchmark>.<fmt>`` and ``shots-<group>.<fmt>`` into ``out``; returns the paths."""
    from metazoo.cards import display_name

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
                label=display_name(learner),
            )
        ax.set(
            title=group, xlabel="shots", ylabel="accuracy (%)" if metric == "accuracy" else "MSE"
        )
        ax.legend(fontsize="small")
        paths += _save(fig, out, f"shots-{group.replace(' ', '-')}", formats)
        plt.close(fig)
    return paths
