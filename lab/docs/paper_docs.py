"""The README's paper table: every row of every paper preset, from the committed result folders.

A preset ``paper-<name>`` (``registry/suites``) has its results in ``benchmarks/results/paper/<name>/``
(the ``*.json`` files ``metazoo bench`` wrote, from one clean commit). A row without results is
pending and names the command that produces it; a folder that mixes commits or holds results of
uncommitted changes is refused (:func:`metazoo.bench.collect`).
"""

from __future__ import annotations

import math
from pathlib import Path

from lab.docs.paper_rows import PaperRow, first_reached, paper_presets, paper_rows
from metazoo.bench.suite import load_suite
from metazoo.evaluation.provenance import machine_label

__all__ = [
    "paper_table",
    "paper_text",
    "measured_rows",
    "measured_table",
    "PAPER_RESULTS",
    "GPU_COMMAND",
]

REPO = Path(__file__).resolve().parents[2]
PAPER_RESULTS = REPO / "benchmarks" / "results" / "paper"
#: The one command that runs the GPU rows (the MAML family on Omniglot) on one H100/H200.
GPU_COMMAND = "python lab/gpu/gpu_paper_rows.py"
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


def run_command(preset: str) -> tuple[str, str]:
    """``(where it runs, the command that fills its rows)`` for a paper preset."""
    folder = f"benchmarks/results/paper/{preset}"
    if preset in GPU_SCRIPT_PRESETS:
        return "GPU", f"{GPU_COMMAND} --preset {preset}"
    if preset in GPU_PRESETS:
        return "GPU and dataset", f"metazoo bench {preset} --device cuda --out {folder}"
    if preset in LONG_PRESETS:
        return "GPU", f"metazoo bench {preset} --device cuda --out {folder}"
    return "CPU", f"metazoo bench {preset} --out {folder}"


def _pending(row: PaperRow) -> str:
    where, command = run_command(row.suite)
    if row.suite in LONG_PRESETS:
        cell = next(c for c in load_suite(row.suite).cells() if c.benchmark == row.benchmark)
        steps, tasks = cell.section("train")["steps"], cell.section("train")["meta_batch"]
        where = f"GPU: {steps:,} meta-updates of {tasks} tasks do not fit two CPU cores"
    return f"pending ({where}): `{command}`" if where != "CPU" else f"pending: `{command}`"


def presets_table(folder: Path = PAPER_RESULTS) -> str:
    """One row per paper preset: what it runs, its rows measured so far, where and how it runs."""
    lines = [
        "| preset | what it runs | rows measured | runs on | command |",
        "|---|---|---|---|---|",
    ]
    for name in paper_presets():
        suite = load_suite(name)
        rows = paper_rows(suite, folder / name)
        measured = sum(row.cell is not None for row in rows)
        where, command = run_command(name)
        lines.append(
            f"| `{name}` | {suite.description} | {measured} of {len(rows)} | {where} | `{command}` |"
        )
    return "\n".join(lines)


def _curve_path(row: PaperRow, folder: Path) -> str | None:  # folder: the preset's results
    """The row's validation curve (``metazoo plot`` of the preset's folder) from the repository
    root, if drawn."""
    figure = folder / "figures" / f"curves-{row.benchmark}.png"
    if not figure.is_file() or not figure.resolve().is_relative_to(REPO):
        return None
    return figure.resolve().relative_to(REPO).as_posix()


def _curve_link(row: PaperRow, folder: Path, root: str = "") -> str:
    """`` ([curve](ROOT/path))`` for the row's curve, or nothing (``root``: the repository root
    from the page that shows the link)."""
    path = _curve_path(row, folder)
    return f" ([curve]({root}{path}))" if path else ""


def status_text(row: PaperRow) -> str:
    """The row's status, with its diagnosis when it is below the paper."""
    return f"{row.status}: {row.diagnosis}" if row.diagnosis else row.status


def _line(row: PaperRow, folder: Path, root: str = "") -> str:
    learner, bench = f"`{row.learner}`", row.benchmark
    if row.cell is None:
        return f"| {learner} | {bench} | – | {paper_text(row.paper)} | {_pending(row)} | – | – |"
    cell, budget = row.cell, row.budget or {}
    ours = f"{cell.mean:.2f} ± {cell.ci95:.2f}"
    if row.second_seed:
        other = row.second_seed
        ours += f"; episode seed {other['seed']}: {other['mean']:.2f} ± {other['ci95']:.2f}"
        ours += " (differ by more than the intervals)" if row.seeds_disagree else ""
    status = status_text(row)
    best = budget.get("best_val")
    trained = (
        f"{budget.get('steps')} episodes, {budget.get('minutes', 0):.0f} min"
        + (f"; best val {best:.2f} at {budget.get('best_step')}" if best is not None else "")
        + _curve_link(row, folder, root)
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


def _paper_hit(row: PaperRow) -> tuple[float, dict | None] | None:
    """``(paper's number, first validation entry at it or None)`` for a row trained on its own
    benchmark; None for a row without a curve or a paper number."""
    if not (row.budget and row.paper and row.budget.get("curve")):
        return None
    target = float(row.paper["value"])
    return target, first_reached(row.budget["curve"], target)


def _reached(row: PaperRow) -> str:
    """``; the paper's number at episode N (M min)`` when the row's validation curve reached it."""
    target, hit = _paper_hit(row) or (None, None)
    if hit is None:
        return ""
    minutes = (hit.get("seconds") or math.nan) / 60
    return f"; the paper's {target:g} on validation at episode {hit['step']} ({minutes:.0f} min)"


def _time_to_target(rows: list[PaperRow]) -> list[str]:
    """For each trained row whose validation is its own benchmark: when it first reached the paper."""
    lines = []
    for row in rows:
        if (found := _paper_hit(row)) is None:
            continue
        target, hit = found
        history = row.budget["curve"]
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


def paper_table(folder: Path = PAPER_RESULTS, root: str = "") -> str:
    """The Markdown of every paper preset's rows, deviations and time-to-paper lines (``root``:
    the repository root from the page, for the curves' links)."""
    header = [
        "| learner | benchmark | ours (95% CI) | paper | status | budget reached | machine, commit |",
        "|---|---|---|---|---|---|---|",
    ]
    lines, notes = list(header), []
    for name in paper_presets():
        suite = load_suite(name)
        rows = paper_rows(suite, folder / name)
        lines += [_line(row, folder / name, root) for row in rows]
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


def measured_rows(folder: Path = PAPER_RESULTS) -> list[tuple[PaperRow, Path]]:
    """Every paper-preset row that has a number of ours, with its preset's results folder."""
    found = []
    for name in paper_presets():
        rows = paper_rows(load_suite(name), folder / name)
        found += [(row, folder / name) for row in rows if row.cell is not None]
    return found


def measured_table(folder: Path = PAPER_RESULTS, root: str = "", pages: str = "") -> str:
    """The short table of measured rows: ours beside the paper, each row linked to its learner's
    page (``pages``: the folder of the learner pages from the page showing the table) and its
    validation curve (``root``: the repository root from there)."""
    lines = [
        "| learner | benchmark | ours (95% CI) | paper | status | trained | curve |",
        "|---|---|---|---|---|---|---|",
    ]
    machines: set[str] = set()
    for row, where in measured_rows(folder):
        env = row.cell.environment
        machines.add(machine_label(env["machine"]) if env.get("machine") else env["device_name"])
        budget = row.budget or {}
        trained = (
            f"{budget['steps']} episodes, {budget.get('minutes', 0):.0f} min{_reached(row)}"
            if budget
            else f"the {row.trained_on} model"
        )
        curve = _curve_path(row, where)
        lines.append(
            f"| [`{row.learner}`]({pages}learners/{row.learner}.md) | {row.benchmark} | "
            f"{row.cell.mean:.2f} ± {row.cell.ci95:.2f} | {paper_text(row.paper)} | {status_text(row)} "
            f"| {trained} | {f'[curve]({root}{curve})' if curve else '–'} |"
        )
    if not machines:
        return "No row is measured at the current presets yet: each is pending its preset's run."
    where = ", ".join(sorted(machines))
    return "\n".join(lines) + f"\n\nMeasured on {where}; training times are wall time."


def curve_figures(folder: Path = PAPER_RESULTS, root: str = "") -> str:
    """The validation curve of every measured row that has one, as Markdown images (``root``: the
    repository root from the page)."""
    images = []
    for row, where in measured_rows(folder):
        path = _curve_path(row, where)
        if path:
            title = f"`{row.learner}` on {row.benchmark} (paper preset `{row.suite}`)"
            images += [f"**{title}**", "", f"![validation curve of {title}]({root}{path})", ""]
    return "\n".join(images) or "No validation curve is committed yet."
