"""What the benchmark scripts share: a logged child process under a hard time limit, and the
result document a speed-lab run (``python -m lab.speed``) left in a folder."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_logged(command: list[str], limit: float, log: Path) -> str:
    """Run ``command`` from the repository root, killed after ``limit`` seconds; its output goes to
    ``log`` and (the last 6,000 characters) to stdout. Returns the exit status in words."""
    print(f"\n$ {' '.join(command[1:])}  (limit {limit:.0f} s)", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        try:
            status = f"exit code {process.wait(timeout=limit)}"
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = f"killed after {limit:.0f} s"
    print(log.read_text()[-6000:].rstrip(), flush=True)
    print(f"--- {status}, {time.perf_counter() - began:.0f} s", flush=True)
    return status


def latest_speed_result(folder: Path) -> dict | None:
    """The newest ``results/speed-*.json`` document under ``folder``; else the newest partial one
    (``*.json.partial``: the run was killed before its end, and it says so); else None."""
    results = folder / "results"
    found = sorted(results.glob("speed-*.json")) or sorted(results.glob("speed-*.json.partial"))
    return json.loads(found[-1].read_text()) if found else None
