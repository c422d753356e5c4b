"""Paper rows: each cell of a paper preset beside the paper's number, with a status.

A paper preset is a built-in suite named ``paper-*`` (``registry/suites``) that follows one paper's
protocol and lists its deviations. :func:`paper_rows` turns a preset and its results folder into one
row per tested benchmark: ours ± 95% CI, the paper's number, the budget reached, the validation
curve's summary and a status:

- ``matches``: the difference is within the combined 95% intervals,
  ``|ours - paper| <= sqrt(ci_ours² + ci_paper²)`` (the paper's interval counts only when it is a
  95% CI; a standard deviation over seeds or no interval counts as 0);
- ``below`` / ``above``: outside them, ours lower / higher;
- ``pending``: no result yet (the row says which command produces it).

A row below the paper carries a diagnosis read from its validation curve (:func:`diagnosis`): a
line through the last half of the curve against log2 of the step says whether it was still rising
(budget, with the trend's projection to the paper's number) or flat (a cause other than budget, to
be found), or whether it is within the validation noise. A cell tested on a second set of episodes (``eval:
check_seed``) keeps that mean too, and the row says when the two differ by more than their
intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metazoo.bench.results import Aggregate, collect, training_seconds
from metazoo.bench.suite import Suite, load_suite, paper_presets
from metazoo.cards import CardError, learner_card

__all__ = [
    "PaperRow",
    "paper_status",
    "paper_rows",
    "paper_presets",
    "first_reached",
    "diagnosis",
    "curve_trend",
    "Trend",
    "RISING_POINTS",
]

#: a validation curve whose last half gains more than this (accuracy points) per doubling of
#: training is rising
RISING_POINTS = 0.5


@dataclass
class PaperRow:
    """One learner × benchmark row of a paper preset."""

    suite: str
    learner: str
    benchmark: str
    paper: dict[str, Any] | None
    cell: Aggregate | None = None
    status: str = "pending"
    #: steps trained, wall minutes, best validation score and its step, the validation curve;
    #: None while pending, and for a benchmark the model was only tested on (``also_on``).
    budget: dict[str, Any] | None = None
    #: the benchmark whose training episodes and validation made the model.
    trained_on: str = ""
    #: why a ``below`` row is below (:func:`diagnosis`); empty for other statuses.
    diagnosis: str = ""
    #: the same model on a second set of test episodes: seed, mean, ci95, n (``eval: check_seed``).
    second_seed: dict[str, Any] | None = None

    @property
    def seeds_disagree(self) -> bool:
        """The two test episode sets' means differ by more than their combined 95% intervals."""
        if self.cell is None or not self.second_seed:
            return False
        gap = abs(self.cell.mean - self.second_seed["mean"])
        return gap > math.hypot(self.cell.ci95, self.second_seed["ci95"])


def paper_status(mean: float, ci95: float, paper: dict[str, Any] | None) -> str:
    """``matches``, ``below`` or ``above`` the paper's number (see the module docstring); ``–``
    when the card has no number for it."""
    if not paper or paper.get("value") is None:
        return "–"
    tolerance = math.hypot(ci95 if math.isfinite(ci95) else 0.0, paper.get("ci95") or 0.0)
    difference = mean - float(paper["value"])
    if abs(difference) <= tolerance:
        return "matches"
    return "below" if difference < 0 else "above"


def first_reached(history: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first validation entry of a training history at or above ``target`` (accuracy), or None."""
    return next(
        (h for h in history if h.get("kind") == "val" and h.get("mean", -math.inf) >= target),
        None,
    )


@dataclass(frozen=True)
class Trend:
    """A validation curve's last half: ``gain`` points per doubling of training (± ``error``, one
    standard error) and the fitted score ``at_end`` of ``steps`` steps."""

    gain: float
    error: float
    at_end: float
    steps: int

    def steps_to(self, target: float) -> float | None:
        """Training steps at which the trend reaches ``target``; None when it does not rise."""
        if self.gain <= 0:
            return None
        return self.steps * 2 ** ((target - self.at_end) / self.gain)


def curve_trend(curve: list[dict[str, Any]], final_step: int) -> Trend | None:
    """Least-squares line through the validation ``curve``'s last half, against log2 of the step.

    The slope is the gain per doubling of training; a fit over several points is not thrown by one
    noisy validation (100 episodes give about +-1 point). None with fewer than 3 points there.
    """
    points = [(math.log2(h["step"]), h["mean"]) for h in curve if h["step"] > final_step / 2]
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    error = math.sqrt(residual / (n - 2) / sxx)
    at_end = mean_y + slope * (math.log2(final_step) - mean_x)
    return Trend(slope, error, at_end, final_step)


def diagnosis(
    curve: list[dict[str, Any]], final_step: int | None, target: float | None = None
) -> str:
    """Why a row is below its paper, read from its validation ``curve`` (entries with ``step`` and
    ``mean``) over a training of ``final_step`` steps (see :func:`curve_trend`).

    Still rising (budget): the last half gains more than :data:`RISING_POINTS` per doubling of
    training, and more than twice its standard error; with a ``target`` (the paper's number, on the
    benchmark the curve was validated on) the trend's projection says when it would reach it. Flat
    (not budget): the gain is below :data:`RISING_POINTS` even at two standard errors above it.
    Otherwise the curve is within its validation noise and the row says so.
    """
    if not curve or not final_step:
        return "no validation curve: the cause is not diagnosed"
    trend = curve_trend(curve, final_step)
    if trend is None:
        return "too few validation points in the last half of training: not diagnosed"
    gain = f"{trend.gain:+.1f} ± {trend.error:.1f} points per doubling of training"
    if trend.gain > RISING_POINTS and trend.gain > 2 * trend.error:
        reach = trend.steps_to(target) if target is not None else None
        projection = ""
        if reach is not None and reach > final_step:
            rounded = float(f"{reach:.2g}")  # a projection, not a measurement: two digits
            projection = f"; at that rate it reaches {target:g} after about {rounded:,.0f} steps"
        return f"still rising ({gain} over the last half{projection}): budget"
    if trend.gain + 2 * trend.error < RISING_POINTS:
        return f"flat ({gain} over the last half): not explained by budget"
    return f"within noise ({gain} over the last half): budget not ruled out"


def _paper_number(learner: str, benchmark: str) -> dict[str, Any] | None:
    try:
        return (learner_card(learner).get("results") or {}).get(benchmark)
    except CardError:
        return None


def _budget(record_train: dict[str, Any]) -> dict[str, Any]:
    vals = [h for h in record_train.get("history", []) if h.get("kind") == "val"]
    best = max(vals, key=lambda h: h["mean"], default=None)
    return {
        "steps": record_train.get("final_step"),
        "minutes": (training_seconds(record_train) or 0.0) / 60,
        "best_val": None if best is None else best["mean"],
        "best_step": None if best is None else best["step"],
        "curve": vals,  # the validation entries: step, mean, seconds
    }


def paper_rows(suite: Suite | str, results: str | Path | None) -> list[PaperRow]:
    """One row per (learner, tested benchmark) of ``suite``, filled from ``results`` when present.

    Args:
        suite: a paper preset (a :class:`Suite` or its name).
        results: its results folder (written by ``metazoo bench``); None or missing: all pending.

    Raises:
        ProvenanceError: the folder mixes code versions or holds results of uncommitted changes.
    """
    suite = load_suite(suite) if isinstance(suite, str) else suite
    found = collect(results).cells if results is not None and Path(results).is_dir() else {}
    trained = _training_records(results) if found else {}
    rows = []
    for cell in suite.cells():
        for benchmark in [cell.benchmark, *cell.section("eval").get("also_on", [])]:
            paper = _paper_number(cell.learner, benchmark)
            row = PaperRow(suite.name, cell.learner, benchmark, paper, trained_on=cell.benchmark)
            row.cell = found.get((cell.learner, benchmark))
            if row.cell is not None:
                row.status = paper_status(row.cell.mean, row.cell.ci95, row.paper)
                record = trained.get(cell.key, {})
                budget = _budget(record.get("train", {}))  # the model's, for every benchmark
                if benchmark == cell.benchmark:
                    row.budget = budget
                    row.second_seed = record.get("second_seed")
                if row.status == "below":
                    own = benchmark == cell.benchmark and row.paper is not None
                    target = row.paper["value"] if own else None
                    row.diagnosis = diagnosis(budget["curve"], budget["steps"], target)
            rows.append(row)
    return rows


def _training_records(results: str | Path) -> dict[str, dict[str, Any]]:
    from metazoo.bench.results import load_results

    return {r["cell"]: r for r in load_results(results) if r.get("status") == "ok"}
