"""Result files of ``metazoo speed``: environment, file names, targets, Markdown tables.

Everything here reads the result document that :func:`metazoo.perf.runner.run_speed` returns (or
a JSON file of it); no number is typed by hand.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

__all__ = [
    "environment",
    "result_stem",
    "evaluate_targets",
    "render_markdown",
    "write_result",
    "summary_table",
    "targets_table",
    "merge_documents",
    "short_table",
    "GPU_TARGET_TASKS_PER_S",
    "training_target_accuracy",
    "training_target_text",
    "FP32_FLOOR_FACTOR",
    "fp32_tolerance",
    "gradient_correct",
]

#: Issue 7's GPU target at the first shape, fp32 with TF32 off (tasks/s).
GPU_TARGET_TASKS_PER_S = 2500.0
#: Issue 7's training target: MAML reaches its paper's accuracy (the ``maml`` card's result) on
#: this benchmark within this many minutes of training on one GPU.
TRAINING_TARGET_BENCHMARK, TRAINING_TARGET_MINUTES = "omniglot-5w1s", 15.0


def training_target_accuracy() -> float:
    """The paper's MAML accuracy on the training target's benchmark, from the ``maml`` card."""
    from metazoo.cards import learner_card

    return float(learner_card("maml")["results"][TRAINING_TARGET_BENCHMARK]["value"])


def training_target_text() -> str:
    """The training target in words, e.g. ``MAML to 98.7% on omniglot-5w1s in under 15 minutes``."""
    return (
        f"MAML to {training_target_accuracy():g}% on {TRAINING_TARGET_BENCHMARK} in under "
        f"{TRAINING_TARGET_MINUTES:g} minutes on one GPU"
    )


#: The CPU target compares these two contenders at every shape.
AUTO, LOOP = "metazoo-auto", "torch-loop"
#: A ratio this close to 1 is inside the run-to-run noise of a shared machine.
NOISE = 0.05
#: Where the plain fp32 task loop itself is further from float64 than the tolerance (rounding
#: amplified through several second-order inner steps), an fp32 contender may be this many times
#: the loop's own error: what fp32 can do at that shape, not an engine defect.
FP32_FLOOR_FACTOR = 2.0


def fp32_tolerance(shape_result: dict, tolerance: float) -> float:
    """The meta-gradient tolerance of fp32 contenders at one shape: ``tolerance``, or
    :data:`FP32_FLOOR_FACTOR` times the plain fp32 task loop's error where the loop misses it."""
    loop = _by_name(shape_result).get(LOOP) or {}
    floor = loop.get("meta_grad_rel_error")
    return tolerance if floor is None or floor <= tolerance else FP32_FLOOR_FACTOR * floor


def gradient_correct(record: dict, shape_result: dict, tolerance: float) -> bool | None:
    """Whether a contender's meta-gradient passes at its shape (None: not checked, or checked
    against its own objective in float64 — a learner's fp32 error, shown but not gated)."""
    error = record.get("meta_grad_rel_error")
    if error is None or record.get("reference") == "own float64":
        return None
    if record.get("precision", "fp32") != "fp32":
        return error <= tolerance
    return error <= fp32_tolerance(shape_result, tolerance)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    match = re.search(r"model name\s*:\s*(.+)", text)
    return match.group(1).strip() if match else platform.processor() or "unknown CPU"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device) -> dict:
    """Device, versions and numeric settings of this run."""
    from metazoo import __version__
    from metazoo.engine import precision_mode

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info = {
            "type": "cuda",
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
        }
    else:
        info = {"type": "cpu", "name": _cpu_name()}
    info.update(threads=torch.get_num_threads(), cpu_count=os.cpu_count())
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "higher": _version("higher"),
        "learn2learn": _version("learn2learn"),
        "metazoo": __version__,
        "git": _git_sha(),
    }
    return {"device": info, "versions": versions, "precision": precision_mode(), "argv": sys.argv}


def result_stem(document: dict) -> str:
    """File name stem with device and versions, e.g. ``speed-cpu-2core-torch2.14.1``."""
    env = document["environment"]
    device = env["device"]
    if device["type"] == "cpu":
        tag = f"cpu-{device['threads']}core"
    else:
        tag = re.sub(r"[^a-z0-9]+", "-", device["name"].lower()).strip("-")
    torch_version = env["versions"]["torch"].split("+")[0]
    suffix = f"-{document['tag']}" if document.get("tag") else ""
    suffix += "-quick" if document["mode"] == "quick" else ""
    return f"speed-{tag}-torch{torch_version}{suffix}"


def _rate(record: dict | None, kind: str = "train") -> float | None:
    if not record or record.get("status") != "ok":
        return None
    return (record.get(kind) or {}).get("per_s")


def _by_name(shape_result: dict) -> dict[str, dict]:
    return {r["name"]: r for r in shape_result["contenders"]}


def _cpu_target(document: dict) -> dict:
    ratios, details = [], []
    for shape in document["shapes"]:
        records = _by_name(shape)
        auto, loop = _rate(records.get(AUTO)), _rate(records.get(LOOP))
        if auto is None or loop is None:
            details.append(f"{shape['shape']['name']}: not measured")
            continue
        ratios.append(auto / loop)
        details.append(f"{shape['shape']['name']}: {auto / loop:.2f}x")
    if not ratios or len(ratios) < len(document["shapes"]):
        status = "not measured"
    elif min(ratios) >= 1.0:
        status = "met"
    elif min(ratios) >= 1.0 - NOISE:
        status = f"met within the {NOISE:.0%} run-to-run noise"
    else:
        status = "not met"
    return {
        "target": f"2 CPU cores: {AUTO} never slower than the task loop ({LOOP}) at any shape",
        "status": status,
        "detail": "; ".join(details),
    }


def _gpu_target(document: dict) -> dict:
    target = {
        "target": f"one H100/H200, omniglot-5w1s, fp32 TF32 off: >= {GPU_TARGET_TASKS_PER_S:.0f} tasks/s",
    }
    first = next((s for s in document["shapes"] if s["shape"]["name"] == "omniglot-5w1s"), None)
    if document["environment"]["device"]["type"] != "cuda" or first is None:
        return {**target, "status": "not measured here (needs a GPU)", "detail": ""}
    best = max(
        (
            (_rate(r), r["name"])
            for r in first["contenders"]
            if r.get("precision") == "fp32" and r["name"].startswith("metazoo") and _rate(r)
        ),
        default=(None, None),
    )
    if best[0] is None:
        return {**target, "status": "not measured", "detail": "no metazoo fp32 contender ran"}
    status = "met" if best[0] >= GPU_TARGET_TASKS_PER_S else "not met"
    full = first["shape"]["meta_batch"] == 32
    detail = f"best {best[1]}: {best[0]:.0f} tasks/s" + ("" if full else " (reduced meta-batch)")
    return {**target, "status": status, "detail": detail}


def _correctness_target(document: dict, tolerance: float) -> dict:
    bad, floors, checked = [], [], 0
    for shape in document["shapes"]:
        allowed = fp32_tolerance(shape, tolerance)
        if allowed > tolerance:
            floors.append(f"{shape['shape']['name']}: loop {allowed / FP32_FLOOR_FACTOR:.1e}")
        for r in shape["contenders"]:
            if r.get("precision") == "fp32" and gradient_correct(r, shape, tolerance) is not None:
                checked += 1
                if not gradient_correct(r, shape, tolerance):
                    bad.append(
                        f"{shape['shape']['name']}/{r['name']} {r['meta_grad_rel_error']:.1e}"
                    )
    detail = f"{checked} checked" + (": " + ", ".join(bad) if bad else "")
    if floors:
        detail += f"; fp32 floor where the plain loop misses {tolerance:g}: " + ", ".join(floors)
    return {
        "target": f"every fp32 contender's meta-gradient within {tolerance:g} relative of float64 "
        f"(or {FP32_FLOOR_FACTOR:g}x the plain fp32 loop's own error where the loop misses it)",
        "status": "not measured" if not checked else ("met" if not bad else "not met"),
        "detail": detail,
    }


def evaluate_targets(document: dict) -> list[dict]:
    """Where each of issue 7's targets stands according to this run."""
    targets = [_correctness_target(document, document.get("tolerance", 1e-3))]
    if document["environment"]["device"]["type"] == "cpu":
        targets.append(_cpu_target(document))
    targets.append(_gpu_target(document))
    targets.append(
        {
            "target": training_target_text(),
            "status": "not measured by metazoo speed (a training run on a GPU)",
            "detail": "",
        }
    )
    return targets


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _peak_memory(record: dict) -> float | None:
    """Peak MiB of a training step; for a captured step, its peak while built (warm-up and
    capture), since a replay allocates nothing new (older files lack it: their graphed rows read 0)."""
    step = (record.get("train") or {}).get("peak_memory_mb")
    built = (record.get("details") or {}).get("build_peak_memory_mb")
    return step if built is None else max(built, step or 0.0)


def _shape_table(shape: dict, tolerance: float) -> list[str]:
    records = _by_name(shape)
    loop = _rate(records.get(LOOP))
    lines = [
        "| contender | precision | meta-grad rel. error | train tasks/s | × loop | eval episodes/s "
        "| peak MiB (train) | build s | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in shape["contenders"]:
        rate, error = _rate(r), r.get("meta_grad_rel_error")
        cells = [
            f"`{r['name']}`",
            r.get("precision", "–"),
            "–"
            if error is None
            else f"{error:.1e}"
            + ("" if gradient_correct(r, shape, tolerance) is not False else " ✗"),
            _fmt(rate),
            "–" if rate is None or not loop else f"{rate / loop:.2f}",
            _fmt(_rate(r, "eval")),
            _fmt(_peak_memory(r), 0),
            _fmt((r.get("details") or {}).get("build_seconds")),  # compile, capture: first step
            (
                r.get("note") or ""
                if r.get("status") == "ok"
                else f"{r['status']}: {r.get('note', '')}"
            ),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def targets_table(document: dict) -> str:
    """The targets of issue 7 as a Markdown table."""
    lines = ["| target | status | detail |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['status']} | {t['detail']} |" for t in document["targets"]]
    return "\n".join(lines)


def render_markdown(document: dict) -> str:
    """The full Markdown report of one run (one table per shape, then the targets)."""
    env, timing = document["environment"], document["timing"]
    device, versions = env["device"], env["versions"]
    load = env.get("load_before", [None])[0], env.get("load_after", [None])[0]
    lines = [
        f"# metazoo speed: {device['name']} ({device['type']}, {device['threads']} threads)",
        "",
        f"torch {versions['torch']}, Python {versions['python']}, higher {versions['higher']}, "
        f"learn2learn {versions['learn2learn']}, metazoo {versions['metazoo']} ({versions['git']}); "
        f"mode {document['mode']}; 1-min load average {_fmt(load[0], 2)} before, {_fmt(load[1], 2)} after.",
        "",
        f"Timing: {timing['method']}; {timing['warmup']} warm-up call(s), {timing['repeats']} "
        f"rounds, runs of >= {timing['min_run_s']} s. Memory: {timing['memory']}. "
        "Meta-gradient error: ||g - g_ref|| / ||g_ref|| against metazoo's sequential executor "
        "in float64 on the same batch and weights (✗: above the tolerance, which for fp32 rows "
        f"is {FP32_FLOOR_FACTOR:g}x the plain fp32 loop's own error where the loop misses it). Generated by "
        "`metazoo speed`; do not edit.",
    ]
    for shape in document["shapes"]:
        lines += ["", f"## {shape['shape']['name']}", "", shape["description"], ""]
        lines += _shape_table(shape, document.get("tolerance", 1e-3))
    lines += ["", "## Targets", "", targets_table(document), ""]
    return "\n".join(lines)


def write_result(document: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<out>/results/<stem>.json`` and ``<out>/tables/<stem>.md``; return both paths."""
    out_dir = Path(out_dir)
    stem = result_stem(document)
    json_path, md_path = out_dir / "results" / f"{stem}.json", out_dir / "tables" / f"{stem}.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    md_path.write_text(render_markdown(document))
    return json_path, md_path


def summary_table(documents: list[dict]) -> str:
    """One row per device, shape and contender: the headline figures of committed runs."""
    lines = [
        "| device | shape | contender | train tasks/s | × loop | eval episodes/s | meta-grad rel. error |",
        "|---|---|---|---|---|---|---|",
    ]
    for document in documents:
        device = document["environment"]["device"]
        where = f"{device['name']} ({device['threads']} threads)"
        for shape in document["shapes"]:
            loop = _rate(_by_name(shape).get(LOOP))
            for r in shape["contenders"]:
                rate = _rate(r)
                if rate is None:
                    continue
                error = r.get("meta_grad_rel_error")
                lines.append(
                    f"| {where} | {shape['shape']['name']} | `{r['name']}` | {_fmt(rate)} | "
                    + ("–" if not loop else f"{rate / loop:.2f}")
                    + f" | {_fmt(_rate(r, 'eval'))} | "
                    + ("–" if error is None else f"{error:.1e}")
                    + " |"
                )
    return "\n".join(lines)


def merge_documents(documents: list[dict]) -> dict:
    """One result document from runs of single shapes on the same machine (``gpu_check.py``)."""
    if not documents:
        raise ValueError("nothing to merge: no speed result document was produced")
    merged = {**documents[0], "shapes": [s for d in documents for s in d["shapes"]]}
    merged["timing"] = {
        **documents[0]["timing"],
        "wall_s": sum(d["timing"]["wall_s"] for d in documents),
    }
    merged["environment"] = {
        **documents[0]["environment"],
        "load_after": documents[-1]["environment"].get("load_after"),
    }
    merged["targets"] = evaluate_targets(merged)
    return merged


def short_table(document: dict) -> str:
    """The compact Markdown table ``gpu_check.py`` prints last: one row per shape and contender."""
    lines = [
        "| shape | contender | precision | rel. error | tasks/s | × loop | eval ep/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape in document["shapes"]:
        loop = _rate(_by_name(shape).get(LOOP))
        for r in shape["contenders"]:
            rate, error = _rate(r), r.get("meta_grad_rel_error")
            status = "" if r.get("status") == "ok" else f" ({r.get('status')})"
            lines.append(
                f"| {shape['shape']['name']} | {r['name']}{status} | {r.get('precision', '–')} | "
                + ("–" if error is None else f"{error:.1e}")
                + f" | {_fmt(rate)} | "
                + ("–" if rate is None or not loop else f"{rate / loop:.2f}")
                + f" | {_fmt(_rate(r, 'eval'))} |"
            )
    return "\n".join(lines)
