"""The "Results" section of ``docs/reproductions.md`` from the reproduction result files.

Every number comes from ``benchmarks/results/reproduction-*.json`` and
``engine-gpu-check-*.json``; ``python -m lab.docs.generate`` puts it between the page's
``<!-- metazoo:reproductions -->`` markers, and its ``--check`` fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.reproductions.common import record_versions
from metazoo.evaluation.provenance import check_one_version, code_version, machine_label

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _sinusoid(path: Path, data: dict) -> list[str]:
    lines = [
        f"### Sinusoid regression (`{path.name}`)",
        "",
        "5-shot test MSE on 600 fixed test tasks (mean ± 95% CI) after 1 / 5 / 10 gradient steps.",
        "",
        "| learner | iterations | train time | 1 step | 5 steps | 10 steps | paper (1 / 5 / 10) | within 20% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for learner, run in data["runs"].items():
        cells = []
        for steps in ("1", "5", "10"):
            e = run["evaluations"][steps]
            cells.append(f"{e['mean']:.3f} ± {e['ci95']:.3f}")
        paper = " / ".join(f"{v['paper']:.2f}" for v in run["paper_comparison"].values())
        within = all(v["within_20_percent"] for v in run["paper_comparison"].values())
        train = run["train"]
        lines.append(
            f"| {learner} | {train['steps']} | {train['seconds'] / 60:.1f} min | "
            + " | ".join(cells)
            + f" | {paper} | {'yes' if within else 'no'} |"
        )
    lines.append("")
    for learner, run in data["runs"].items():
        if run.get("gap_explanation"):
            lines.append(f"- **{learner}**: {run['gap_explanation']}")
    return lines + [""]


def _paper_number(paper: dict) -> str:
    """The paper's number as the README shows it: ± 95% CI, (σ std over seeds), ² when quoted
    from a secondary source."""
    text = f"{paper['value']}" + (f" ± {paper['ci95']}" if "ci95" in paper else "") + "%"
    text += f" (σ {paper['std']})" if "std" in paper else ""
    return text if paper.get("verified", True) else f"{text} ²"


def _classification(path: Path, data: dict) -> list[str]:
    lines = [
        f"### {data['reproduction']} (`{path.name}`)",
        "",
        f"{data['note'][0].upper()}{data['note'][1:]}.",
        "",
        "| learner | iterations × meta-batch | train time | validation accuracy during training "
        "| test accuracy (600 episodes) | paper |",
        "|---|---|---|---|---|---|",
    ]
    for learner, run in data["runs"].items():
        (e,) = run["evaluations"].values()
        train, cfg = run["train"], run["config"]["train"]
        paper = run["paper"]
        curve = ", ".join(
            f"{h['mean']:.1f}% @ {h['step']}" for h in train["history"] if h.get("kind") == "val"
        )
        lines.append(
            f"| {learner} | {train['steps']} × {cfg['meta_batch']} | {train['seconds'] / 60:.1f} min | "
            f"{curve or '–'} | {e['mean']:.2f} ± {e['ci95']:.2f}% | "
            + (f"{_paper_number(paper)} |" if paper else "– |")
        )
    if any(
        run["paper"] and not run["paper"].get("verified", True) for run in data["runs"].values()
    ):
        lines += ["", "² quoted from a secondary table, not yet checked against the paper."]
    return lines + [""]


def _gpu_check(path: Path, data: dict) -> list[str]:
    env, ex = data["environment"], data["executors"]
    gates = data["fd_gates_float64_max_error"]
    return [
        f"### Engine checks on a GPU (`{path.name}`)",
        "",
        f"Device: {env['device_name']}; torch {env['torch']}.",
        "",
        f"- float64 meta-gradients vs central finite differences, worst relative error over "
        f"MAML/ANIL/Meta-SGD and both executors: {max(gates.values()):.1e}.",
        f"- float32 MAML meta-gradient (Conv-4, {ex['meta_batch']} tasks) vs float64: relative "
        f"error {data['tf32']['tf32_off']['relative_error_vs_float64']:.1e} with TF32 off "
        f"(`metazoo.engine.reproducible()`), "
        f"{data['tf32']['tf32_on']['relative_error_vs_float64']:.1e} with TF32 on.",
        f"- seconds per meta-gradient ({ex['workload']}, meta-batch {ex['meta_batch']}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in ex["seconds_per_meta_gradient"].items())
        + ".",
        "",
    ]


def render() -> str:
    """The generated section, one block per result file."""
    lines = ["## Results", ""]
    for path in sorted(RESULTS.glob("reproduction-*.json")):
        data = json.loads(path.read_text())
        env = data["environment"]
        check_one_version(record_versions(path.name, env, data["runs"]))
        block = _sinusoid(path, data) if data["metric"] == "mse" else _classification(path, data)
        block.insert(1, "")
        block.insert(
            2,
            f"Machine: {machine_label(env['machine'])}; torch {env['torch']}; "
            f"git {code_version(env['git'])[:12]}.",
        )
        lines += block
    for path in sorted(RESULTS.glob("engine-gpu-check-*.json")):
        lines += _gpu_check(path, json.loads(path.read_text()))
    return "\n".join(lines)
