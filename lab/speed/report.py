"""Result files of the speed lab: environment, file names, Markdown tables (the targets they
report are judged in :mod:`lab.speed.targets`).

Everything here reads the result document that :func:`lab.speed.runner.run_speed` returns (or
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

from lab.speed.targets import (
    FP32_FLOOR_FACTOR,
    LOOP,
    by_name,
    evaluate_targets,
    gradient_correct,
    rate_of,
)
from metazoo.bench import write_json_atomic
from metazoo.evaluation.provenance import portable_argv

__all__ = [
    "environment",
    "result_stem",
    "render_markdown",
    "write_result",
    "write_partial",
    "partial_path",
    "summary_table",
    "targets_table",
    "merge_documents",
    "short_table",
]


def package_version(distribution: str) -> str:
    """An installed distribution's version, or ``not installed``."""
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
        "higher": package_version("higher"),
        "learn2learn": package_version("learn2learn"),
        "metazoo": __version__,
        "git": _git_sha(),
    }
    return {
        "device": info,
        "versions": versions,
        "precision": precision_mode(),
        "argv": portable_argv(sys.argv),
    }


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


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _peak_memory(record: dict) -> float | None:
    """Peak MiB of a training step; for a captured step, its peak while built (warm-up and
    capture), since a replay allocates nothing new (older files lack it: their graphed rows read 0)."""
    step = (record.get("train") or {}).get("peak_memory_mb")
    built = (record.get("details") or {}).get("build_peak_memory_mb")
    return step if built is None else max(built, step or 0.0)


def _shape_table(shape: dict, tolerance: float) -> list[str]:
    records = by_name(shape)
    loop = rate_of(records.get(LOOP))
    lines = [
        "| contender | precision | meta-grad rel. error | train tasks/s | × loop | eval episodes/s "
        "| peak MiB (train) | build s | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in shape["contenders"]:
        rate, error = rate_of(r), r.get("meta_grad_rel_error")
        cells = [
            f"`{r['name']}`",
            r.get("precision", "–"),
            "–"
            if error is None
            else f"{error:.1e}"
            + ("" if gradient_correct(r, shape, tolerance) is not False else " ✗"),
            _fmt(rate),
            "–" if rate is None or not loop else f"{rate / loop:.2f}",
            _fmt(rate_of(r, "eval")),
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


#: Said of a document whose run ended (or was killed) before it was whole.
PARTIAL_NOTE = " (PARTIAL: the run stopped early; rates are over the rounds it timed)"


def render_markdown(document: dict) -> str:
    """The full Markdown report of one run (one table per shape, then the targets)."""
    env, timing = document["environment"], document["timing"]
    device, versions = env["device"], env["versions"]
    load = env.get("load_before", [None])[0], env.get("load_after", [None])[0]
    # The heading and footer keep the lab's old command name: committed tables regenerate as is.
    lines = [
        f"# metazoo speed: {device['name']} ({device['type']}, {device['threads']} threads)",
        "",
        f"torch {versions['torch']}, Python {versions['python']}, higher {versions['higher']}, "
        f"learn2learn {versions['learn2learn']}, metazoo {versions['metazoo']} ({versions['git']}); "
        f"mode {document['mode']}{PARTIAL_NOTE if document.get('partial') else ''}; 1-min load average {_fmt(load[0], 2)} before, {_fmt(load[1], 2)} after.",
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
    """Write ``<out>/results/<stem>.json`` and ``<out>/tables/<stem>.md``; return both paths.
    The run's partial result (:func:`write_partial`) is removed once the whole one is written."""
    out_dir = Path(out_dir)
    stem = result_stem(document)
    json_path, md_path = out_dir / "results" / f"{stem}.json", out_dir / "tables" / f"{stem}.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    md_path.write_text(render_markdown(document))
    partial_path(document, out_dir).unlink(missing_ok=True)
    return json_path, md_path


def partial_path(document: dict, out_dir: str | Path) -> Path:
    """``<out>/results/<stem>.json.partial``: a run's document so far, beside where the whole one
    will go, under a name that result globs (``*.json``) and ``lab/docs/generate.py`` do not read."""
    return Path(out_dir) / "results" / f"{result_stem(document)}.json.partial"


def write_partial(document: dict, out_dir: str | Path) -> Path:
    """Replace the run's partial result with ``document`` (whole, never half written)."""
    return write_json_atomic(document, partial_path(document, out_dir))


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
            loop = rate_of(by_name(shape).get(LOOP))
            for r in shape["contenders"]:
                rate = rate_of(r)
                if rate is None:
                    continue
                error = r.get("meta_grad_rel_error")
                lines.append(
                    f"| {where} | {shape['shape']['name']} | `{r['name']}` | {_fmt(rate)} | "
                    + ("–" if not loop else f"{rate / loop:.2f}")
                    + f" | {_fmt(rate_of(r, 'eval'))} | "
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
    if document.get("partial"):
        lines.insert(0, PARTIAL_NOTE.strip(" ()") + "\n")
    for shape in document["shapes"]:
        loop = rate_of(by_name(shape).get(LOOP))
        for r in shape["contenders"]:
            rate, error = rate_of(r), r.get("meta_grad_rel_error")
            status = "" if r.get("status") == "ok" else f" ({r.get('status')})"
            lines.append(
                f"| {shape['shape']['name']} | {r['name']}{status} | {r.get('precision', '–')} | "
                + ("–" if error is None else f"{error:.1e}")
                + f" | {_fmt(rate)} | "
                + ("–" if rate is None or not loop else f"{rate / loop:.2f}")
                + f" | {_fmt(rate_of(r, 'eval'))} |"
            )
    return "\n".join(lines)
