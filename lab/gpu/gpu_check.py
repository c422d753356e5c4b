"""One script for a lent GPU: correctness first, then the speed table, a short table last.

    python lab/gpu/gpu_check.py             # on the GPU machine (< 7 minutes, installs nothing)
    python lab/gpu/gpu_check.py --minutes 4 # a tighter hard limit for the three shapes
    python lab/gpu/gpu_check.py --dry-run   # on a CPU: the same steps, tiny and fast

Each shape runs in its own speed-lab process with a hard time limit, so a contender that
hangs or breaks the CUDA context costs one shape, not the session. Inside a shape every contender's
meta-gradient is first compared with the float64 sequential reference (TF32 off), then timed
(fp32 with TF32 off; the TF32-on and bf16-autocast variants are separate rows). Outputs go to
``$OUT`` when set (else ``benchmarks/``): ``results/<stem>.json``, ``tables/<stem>.md`` and the
per-shape logs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the lab and metazoo from this checkout, without an install

from lab.script_tools import latest_speed_result, run_logged  # noqa: E402
from lab.speed.report import (  # noqa: E402
    merge_documents,
    render_markdown,
    short_table,
    write_result,
)

#: (shape, share of the time limit in seconds): 6 minutes in all by default (``--minutes``).
GPU_PLAN = (("omniglot-5w1s", 150), ("omniglot-20w1s", 105), ("miniimagenet-5w1s", 105))
#: The CPU rehearsal: the first shape at meta-batch 1, a few contenders, CUDA-only ones skipped.
DRY_CONTENDERS = ("torch-loop", "metazoo-auto", "metazoo-vectorized+graph", "metazoo-auto+bf16")


def _command(shape: str, limit: float, dry_run: bool, out: Path) -> list[str]:
    command = [sys.executable, "-m", "lab.speed", "--shapes", shape, "--out", str(out)]
    if dry_run:
        rehearsal = "--device cpu --threads 1 --quick --tasks 1 --contenders"
        return [*command, *rehearsal.split(), *DRY_CONTENDERS]
    # the speed run stops starting work at 70% of the limit, so it usually ends on its own
    budget = f"--device cuda --repeats 3 --min-run 0.3 --budget {0.7 * limit:.0f}"
    return [*command, *budget.split()]


def _run_shape(shape: str, limit: float, dry_run: bool, out: Path) -> dict | None:
    """Run one shape in a child process; its result document, or None (the log says why)."""
    work = out / "shapes" / shape
    run_logged(_command(shape, limit, dry_run, work), limit, out / "logs" / f"{shape}.log")
    return latest_speed_result(work)


def _correctness_table(document: dict) -> str:
    lines = ["| shape | contender | precision | meta-grad rel. error vs float64 | ok |"]
    lines.append("|---|---|---|---|---|")
    for shape in document["shapes"]:
        for r in shape["contenders"]:
            error = r.get("meta_grad_rel_error")
            lines.append(
                f"| {shape['shape']['name']} | {r['name']} | {r.get('precision', '–')} | "
                + (f"{error:.2e}" if error is not None else f"{r['status']}: {r.get('note', '')}")
                + f" | {'yes' if r.get('gradient_ok') else 'no' if error is not None else '–'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="rehearse on the CPU, tiny")
    parser.add_argument("--out", help="output folder (default: $OUT, else benchmarks/)")
    parser.add_argument(
        "--minutes", type=float, default=6.0, help="hard limit for all shapes together (default 6)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or REPO / "benchmarks")
    scale = args.minutes * 60 / sum(limit for _, limit in GPU_PLAN)
    plan = [(shape, limit * scale) for shape, limit in GPU_PLAN]
    plan = [(GPU_PLAN[0][0], 300)] if args.dry_run else plan
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device here: use --dry-run to rehearse on the CPU", file=sys.stderr)
            return 2
    began = time.perf_counter()
    documents = [d for d in (_run_shape(s, limit, args.dry_run, out) for s, limit in plan) if d]
    if not documents:
        print("no shape produced a result; see the logs above", file=sys.stderr)
        return 1
    merged = merge_documents(documents)
    json_path, md_path = write_result(merged, out)
    print("\n## Correctness (TF32 off; float64 sequential reference)\n")
    print(_correctness_table(merged))
    print("\n" + render_markdown(merged).split("## Targets")[-1].strip())
    print(f"\nwrote {json_path} and {md_path} ({time.perf_counter() - began:.0f} s in all)")
    print("\n## Speed (train tasks/s, eval episodes/s; TF32 off unless the row says tf32)\n")
    print(short_table(merged))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
