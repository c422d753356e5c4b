"""The speed lab's generated Markdown, rendered from the committed speed result files.

Renderers only: ``lab/docs/generate.py`` puts them between the markers (``<!-- metazoo:NAME -->`` ...
``<!-- /metazoo:NAME -->``) of ``docs/speed.md`` (``speed-summary``: headline figures of every
full run; ``speed-targets``: where each speed target stands, per run; ``speed-training``:
the timed training runs; ``speed``: :func:`readme_speed_table`, the status of every target).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from lab.speed.report import result_stem, summary_table, targets_table
from lab.speed.targets import (
    TRAINING_TARGET_BENCHMARK,
    TRAINING_TARGET_MINUTES,
    evaluate_targets,
    training_target_accuracy,
    training_target_text,
)
from metazoo.engine.fast import FAST_STEP_OPTIONS

__all__ = [
    "RESULTS",
    "load_results",
    "load_training_runs",
    "training_table",
    "readme_speed_table",
    "speed_sections",
]

#: The committed result files (``benchmarks/results``).
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def load_results(results_dir: str | Path) -> list[dict]:
    """Every full (not ``--quick``) speed result document in ``results_dir``, by file name."""
    paths = sorted(Path(results_dir).glob("speed-*.json"))
    documents = [json.loads(p.read_text()) for p in paths]
    return [d for d in documents if d.get("mode") == "full"]


def load_training_runs(folder: str | Path = RESULTS / "training") -> list[tuple[str, dict]]:
    """``(file name, result.json of metazoo train)`` for every committed timed training run."""
    return [(p.name, json.loads(p.read_text())) for p in sorted(Path(folder).glob("*.json"))]


def _meta_batch(run: dict) -> int:
    """Tasks per step: the run's setting, else its benchmark card's (what the trainer used)."""
    from metazoo.cards import benchmark_card

    given = run["train"]["config"].get("meta_batch")
    return int(given or benchmark_card(run["result"]["benchmark"])["meta_batch"])


def _median_step_rate(history: list[dict]) -> float | None:
    """The median tasks/s the trainer logged between validations (steady state), if any."""
    rates = [e["tasks_per_s"] for e in history if e.get("kind") == "train" and e.get("tasks_per_s")]
    return statistics.median(rates) if rates else None


def _training_row(name: str, run: dict) -> dict:
    trained, tested = run["train"], run["result"]
    config, learner = trained["config"], tested["provenance"]["config"]
    fast = config.get("fast") or {}  # TrainConfig.fast since issue 25; flat fields before
    on = {"fast_step": config.get("fast_step") or config.get("fast") is not None}
    on |= {k: config.get(k) or fast.get(k) for k in FAST_STEP_OPTIONS}
    options = [k for k in ("fast_step", *FAST_STEP_OPTIONS) if on[k]]
    seconds = trained.get("total_seconds", trained["seconds"])  # resumed runs: all their calls
    minutes, mean = seconds / 60, tested["mean"]
    reached = (
        tested["benchmark"] == TRAINING_TARGET_BENCHMARK
        and mean >= training_target_accuracy()
        and minutes <= TRAINING_TARGET_MINUTES
    )
    test_steps = learner.get("test_inner_steps") or learner["inner_steps"]
    return {
        "file": name,
        "device": tested["provenance"].get("device_name", tested["provenance"]["device"]),
        "options": ", ".join(options) or "standard step",
        "inner": f"alpha={learner['inner_lr']:g}, {learner['inner_steps']} step(s), "
        f"{test_steps} at test",
        "tf32": "on" if tested["provenance"]["precision"].get("tf32_cudnn") else "off",
        "minutes": minutes,
        "steps": trained["final_step"],
        "tasks_per_s": trained["final_step"] * _meta_batch(run) / seconds,
        "step_tasks_per_s": _median_step_rate(trained.get("history", [])),
        "best_val": trained["best_val"],
        "test": f"{mean:.2f} ± {tested['ci95']:.2f} ({len(tested['scores'])} ep.)",
        "status": "met" if reached else f"not met: {mean:.2f}% after {minutes:.1f} min",
    }


def training_table(runs: list[tuple[str, dict]]) -> str:
    """The timed MAML training runs against the training target, one row per run."""
    if not runs:
        return "No timed training run is committed yet."
    lines = [
        "| device | fast step | inner loop | cuDNN TF32 | trained | steps | tasks/s (all in) "
        "| tasks/s (median step) | best val | test | target | result file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs:
        r = _training_row(name, run)
        step_rate = f"{r['step_tasks_per_s']:,.0f}" if r["step_tasks_per_s"] else "–"
        lines.append(
            f"| {r['device']} | {r['options']} | {r['inner']} | {r['tf32']} | {r['minutes']:.1f} min "
            f"| {r['steps']:,} | {r['tasks_per_s']:,.0f} | {step_rate} | {r['best_val']:.2f} "
            f"| {r['test']} "
            f"| {r['status']} | `{r['file']}` |"
        )
    return "\n".join(lines)


def readme_speed_table(
    documents: list[dict] | None = None, runs: list[tuple[str, dict]] | None = None
) -> str:
    """Where each speed target stands, per committed run and device, each run marked with the
    commit (the engine) it measured."""
    documents = load_results(RESULTS) if documents is None else documents
    runs = load_training_runs() if runs is None else runs
    lines = ["| target | run (device, commit) | status | detail |", "|---|---|---|---|"]
    for document in documents:
        commit = (document["environment"].get("versions") or {}).get("git") or "commit unknown"
        for target in evaluate_targets(document):
            if target["status"].startswith("not measured"):
                continue  # the training target is read from the training runs below
            lines.append(
                f"| {target['target']} | `{result_stem(document)}` (git {commit}) "
                f"| {target['status']} | {target['detail']} |"
            )
    for name, run in runs:
        r = _training_row(name, run)
        lines.append(
            f"| {training_target_text()} | `{name}` ({r['device']}) | {r['status']} "
            f"| {r['steps']:,} steps, {r['tasks_per_s']:,.0f} tasks/s all in, {r['options']}, "
            f"{r['inner']}, cuDNN TF32 {r['tf32']} |"
        )
    return "\n".join(lines)


def speed_sections(documents: list[dict]) -> dict:
    """Renderers for the generated sections of ``docs/speed.md``."""

    def targets() -> str:
        if not documents:
            return "No full speed run is committed yet."
        parts = []
        for document in documents:
            current = {**document, "targets": evaluate_targets(document)}  # today's rules
            parts += [f"`{result_stem(document)}`:", "", targets_table(current), ""]
        return "\n".join(parts)

    def summary() -> str:
        if not documents:
            return "No full speed run is committed yet."
        return summary_table(documents)

    return {
        "speed-summary": summary,
        "speed-targets": targets,
        "speed-training": lambda: training_table(load_training_runs()),
    }
