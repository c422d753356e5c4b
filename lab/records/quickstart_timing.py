"""The quickstart's wall time, before and after, from the result files of its runs (issue 28).

Each run is a results folder of ``metazoo bench quickstart``; its wall time is the span from the
first cell's start to the last cell's end (the result files' ``started`` and ``finished``), so
cells run side by side count once. Runs at the same commit must have the same numbers: the table
says whether every cell's test mean agrees to the last digit.

    python -m lab.records.quickstart_timing LABEL=FOLDER ... --out benchmarks/tables/quickstart-timing.md
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from metazoo.evaluation.provenance import machine_label


def _records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def most_at_once(records: list[dict[str, Any]]) -> int:
    """The most cells that were running at the same time (from their start and end times)."""
    edges = []
    for r in records:
        edges += [
            (datetime.fromisoformat(r["started"]), 1),
            (datetime.fromisoformat(r["finished"]), -1),
        ]
    running = most = 0
    for _, change in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        running += change
        most = max(most, running)
    return most


def run_summary(label: str, folder: Path) -> dict[str, Any]:
    """Wall time, summed cell time, commit, machine, threads and each cell's seconds and mean."""
    records = _records(folder)
    if not records:
        raise SystemExit(f"no result files in {folder}: give LABEL=FOLDER of a quickstart run")
    start = min(datetime.fromisoformat(r["started"]) for r in records)
    end = max(datetime.fromisoformat(r["finished"]) for r in records)
    env = records[0]["environment"]
    return {
        "label": label,
        "commit": (env.get("git") or {}).get("sha", "unknown")[:7],
        "machine": machine_label(env["machine"]),
        "jobs": most_at_once(records),
        "wall_s": (end - start).total_seconds(),
        "cells_s": sum(r["seconds"] for r in records),
        "cells": {r["cell"]: (r["seconds"], r["result"]["mean"]) for r in records},
    }


def timing_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per run, then one row per cell (seconds in each run)."""
    lines = [
        "| run | commit | cells side by side | wall time (min) | cells' time summed (min) | same numbers as |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        same = [
            other["label"]
            for other in runs
            if other is not run
            and other["commit"] == run["commit"]
            and {c: m for c, (_, m) in other["cells"].items()}
            == {c: m for c, (_, m) in run["cells"].items()}
        ]
        lines.append(
            f"| {run['label']} | {run['commit']} | {run['jobs']} | {run['wall_s'] / 60:.1f} | "
            f"{run['cells_s'] / 60:.1f} | {', '.join(same) or '–'} |"
        )
    cells = sorted({c for run in runs for c in run["cells"]})
    lines += ["", "| cell | " + " | ".join(f"{r['label']} (s)" for r in runs) + " |"]
    lines.append("|---|" + "---|" * len(runs))
    for cell in cells:
        seconds = [f"{r['cells'][cell][0]:.0f}" if cell in r["cells"] else "–" for r in runs]
        lines.append(f"| {cell} | " + " | ".join(seconds) + " |")
    machines = ", ".join(sorted({r["machine"] for r in runs}))
    return "\n".join(lines) + f"\n\nMeasured on {machines}, one run right after the other.\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FOLDER of each quickstart run, in order")
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    specs = [spec.split("=", 1) for spec in args.runs]
    if any(len(spec) != 2 for spec in specs):
        parser.error("give each run as LABEL=FOLDER")
    runs = [run_summary(label, Path(folder)) for label, folder in specs]
    text = timing_table(runs)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
