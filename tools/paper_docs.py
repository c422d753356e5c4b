"""The README's paper table: every row of every paper preset, from the committed result folders.

A preset ``paper-<name>`` (``registry/suites``) has its results in ``benchmarks/results/paper/<name>/``
(the ``*.json`` files ``metazoo bench`` wrote, from one clean commit). A row without results is
pending and names the command that produces it; a folder that mixes commits or holds results of
uncommitted changes is refused (:func:`metazoo.bench.collect`).
"""

from __future__ import annotations

import math
from pathlib import Path

from metazoo.bench.paper import PaperRow, first_reached, paper_presets, paper_rows
from metazoo.bench.suite import load_suite
from metazoo.evaluation.provenance import machine_label

__all__ = ["paper_table", "paper_text", "PAPER_RESULTS", "GPU_COMMAND"]

REPO = Path(__file__).resolve().parents[1]
PAPER_RESULTS = REPO / "benchmarks" / "results" / "paper"
#: The one command that runs the GPU rows (the MAML family on Omniglot) on a lent H100/H200.
GPU_COMMAND = "python benchmarks/gpu_paper_rows.py"
#: The MAML family on Omniglot: the GPU script runs them (``--preset NAME``).
GPU_SCRIPT_PRESETS = (
    "paper-maml-omniglot",
    "paper-reptile-omniglot",
    "paper-anil-omniglot",
    "paper-metasgd-omniglot",
    "paper-mamlpp-omniglot",
)
#: Presets that need a GPU and their dataset (mini/tiered-ImageNet, CUB, CIFAR are not on the CPU
#: machine): their pending rows name ``metazoo bench NAME --device cuda``.
GPU_PRESETS = (
    "paper-maml-miniimagenet",
    "paper-reptile-miniimagenet",
    "paper-anil-miniimagenet",
    "paper-metasgd-miniimagenet",
    "paper-mamlpp-miniimagenet",
    "paper-snail-miniimagenet",
    "paper-protonet-miniimagenet",
    "paper-matchingnet-miniimagenet",
    "paper-relationnet-miniimagenet",
    "paper-metaoptnet-imagenet",
    "paper-metaoptnet-cifar",
    "paper-baselinepp",
    "paper-transductive-ft",
)
#: Presets whose paper budget is far beyond two CPU cores in a session (their pending rows name
#: ``--device cuda`` and the meta-updates the paper trained for).
LONG_PRESETS = ("paper-snail-omniglot", "paper-mann-omniglot")


def paper_text(paper: dict | None) -> str:
    """A paper's number as published: ``± 95% CI``, or ``(σ std)`` for a standard deviation over
    seeds (a different quantity, never in the ± column); ``²`` when from a secondary source."""
    if not paper:
        return "–"
    text = f"{paper['value']}"
    if "ci95" in paper:
        text += f" ± {paper['ci95']}"
    if "std" in paper:
        text += f" (σ {paper['std']})"
    return text if paper.get("verified", True) else f"{text} ²"


def _pending(row: PaperRow) -> str:
    folder = f"benchmarks/results/paper/{row.suite}"
    if row.suite in GPU_SCRIPT_PRESETS:
        return f"pending (GPU): `{GPU_COMMAND} --preset {row.suite}`"
    if row.suite in GPU_PRESETS:
        return (
            f"pending (GPU and dataset): `metazoo bench {row.suite} --device cuda --out {folder}`"
        )
    if row.suite in LONG_PRESETS:
        cell = next(c for c in load_suite(row.suite).cells() if c.benchmark == row.benchmark)
        steps, tasks = cell.section("train")["steps"], cell.section("train")["meta_batch"]
        return (
            f"pending (GPU: {steps:,} meta-updates of {tasks} tasks do not fit two CPU cores): "
            f"`metazoo bench {row.suite} --device cuda --out {folder}`"
        )
    return f"pending: `metazoo bench {row.suite} --out {folder}`"


def _curve_link(row: PaperRow, folder: Path) -> str:  # folder: the preset's results
    """A link to the row's validation curve (``metazoo plot`` of the preset's folder), if drawn."""
    figure = folder / "figures" / f"curves-{row.benchmark}.png"
    if not figure.is_file() or not figure.resolve().is_relative_to(REPO):
        return ""
    return f" ([curve]({figure.resolve().relative_to(REPO).as_posix()}))"


def _line(row: PaperRow, folder: Path) -> str:
    learner, bench = f"`{row.learner}`", row.benchmark
    if row.cell is None:
        return f"| {learner} | {bench} | – | {paper_text(row.paper)} | {_pending(row)} | – | – |"
    cell, budget = row.cell, row.budget or {}
    ours = f"{cell.mean:.2f} ± {cell.ci95:.2f}"
    if row.second_seed:
        other = row.second_seed
        ours += f"; episode seed {other['seed']}: {other['mean']:.2f} ± {other['ci95']:.2f}"
        ours += " (differ by more than the intervals)" if row.seeds_disagree else ""
    status = f"{row.status}: {row.diagnosis}" if row.diagnosis else row.status
    best = budget.get("best_val")
    trained = (
        f"{budget.get('steps')} episodes, {budget.get('minutes', 0):.0f} min"
        + (f"; best val {best:.2f} at {budget.get('best_step')}" if best is not None else "")
        + _curve_link(row, folder)
        if budget
        else f"the {row.trained_on} row's model"
    )
    env = cell.environment
    machine = machine_label(env["machine"]) if env.get("machine") else env.get("device_name")
    sha = (env.get("git") or {}).get("sha", "")[:10]
    return (
        f"| {learner} | {bench} | {ours} | {paper_text(row.paper)} | {status} | {trained} | "
        f"{machine}, git {sha} |"
    )


def _time_to_target(rows: list[PaperRow]) -> list[str]:
    """For each trained row whose validation is its own benchmark: when it first reached the paper."""
    lines = []
    for row in rows:
        if not (row.budget and row.paper and row.budget.get("curve")):
            continue
        history = row.budget["curve"]
        target = float(row.paper["value"])
        hit = first_reached(history, target)
        name = f"`{row.learner}` on {row.benchmark}"
        if hit is None:
            best = max(history, key=lambda h: h["mean"])
            lines.append(
                f"{name}: did not reach the paper's {target}% on the validation episodes within "
                f"{row.budget['steps']} episodes ({row.budget['minutes']:.0f} min); best "
                f"{best['mean']:.2f}% at episode {best['step']}."
            )
        else:
            minutes = (hit.get("seconds") or math.nan) / 60
            lines.append(
                f"{name}: first reached the paper's {target}% on the validation episodes at "
                f"episode {hit['step']}, after {minutes:.1f} min of wall time."
            )
    return lines


def paper_table(folder: Path = PAPER_RESULTS) -> str:
    """The Markdown of every paper preset's rows, deviations and time-to-paper lines."""
    header = [
        "| learner | benchmark | ours (95% CI) | paper | status | budget reached | machine, commit |",
        "|---|---|---|---|---|---|---|",
    ]
    lines, notes = list(header), []
    for name in paper_presets():
        suite = load_suite(name)
        rows = paper_rows(suite, folder / name)
        lines += [_line(row, folder / name) for row in rows]
        notes += [f"- `{name}` ({suite.reference}): {text}" for text in suite.deviations]
        notes += [f"- {text}" for text in _time_to_target(rows)]
    legend = (
        "Status: *matches* when ours and the paper differ by less than their combined 95% "
        "intervals (a σ over seeds or a missing interval counts as 0), else *below* or *above*. "
        "² marks a paper number quoted from a secondary source. Budget reached: the training "
        "episodes, the training wall time, the best validation score (the checkpoint tested) and "
        "the validation curve (`metazoo plot` of the preset's results). Deviations from the papers:"
    )
    return "\n".join(lines) + "\n\n" + legend + "\n\n" + "\n".join(notes)
