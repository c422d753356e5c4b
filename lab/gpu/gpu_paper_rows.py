"""Issue 15's GPU rows: the MAML family's Omniglot paper rows on one H100/H200 in about ten minutes.

    python lab/gpu/gpu_paper_rows.py                    # on the GPU machine; installs nothing
    python lab/gpu/gpu_paper_rows.py --dry-run          # on a CPU: the same steps, tiny

1. Correctness first. ``python -m lab.speed`` at the speed shapes of the cells to run
   (``omniglot-5w1s`` for the 5-way cells, ``omniglot-20w1s`` for the 20-way ones: the same
   network and inner loop; the 5-shot support is not a separate shape) with the fast-step
   contenders of ``--contenders``: each contender's meta-gradient is checked against float64
   before it is timed. Each benchmark then trains with the fastest contender that passed at its
   shape (:func:`lab.gpu.gpu_session._best_fast_step`: fp32 only, or with ``--tf32`` also a
   TF32 step within 5% of float64, which the table labels ``tf32``).
2. The preset (``--preset``, default ``paper-maml-omniglot``) as a suite file ``$OUT/<preset>.yaml``:
   its cells in order, as many as fit the time left at ``--minutes-per-cell`` of training each
   (``TrainConfig.max_minutes``) plus ``--overhead`` seconds per cell (compilation, validation,
   the 600 test episodes); each trains with its benchmark's checked fast step, TF32 off unless
   chosen, episodes sampled on the GPU, and the budget is added to the preset's deviations.
   ``metazoo bench <that file> --device cuda`` then writes one result file per cell.
3. A short table last: each row beside the card's number, with its status, budget and step.

Result files go to ``$OUT/<preset>-<environment>/`` (``$OUT`` unset:
``benchmarks/results/paper/<preset>-<environment>/``, e.g. ``...-cuda-h100-torch2.11.0``); move
them to ``benchmarks/results/paper/<preset>/`` to put the rows in the README (``lab/docs/generate.py``),
which accepts results of one clean commit only. A second call on the still-warm machine with the
same ``$OUT`` skips the finished cells and resumes an interrupted one from its checkpoint.

On a lent machine without the Omniglot PNGs, carry the decoded cache and a file list and pass
``--data-skeleton``, exactly as for ``lab/gpu/gpu_session.py`` (see its docstring): the
decoded-Omniglot cache key reads every PNG's name, size and mtime, so the skeleton recreates the
files sparse with those sizes and mtimes (``os.truncate`` + ``os.utime``)::

    python lab/gpu/gpu_session.py --write-skeleton .gpu_extra/omniglot-files.txt.gz   # here
    PYTHONPATH=$PWD METAZOO_CACHE=$PWD/.gpu_extra/cache python3 lab/gpu/gpu_paper_rows.py \\
        --data-skeleton .gpu_extra/omniglot-files.txt.gz                                 # there
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the lab and metazoo from this checkout, without an install

from lab.docs.paper_rows import paper_status  # noqa: E402
from lab.gpu.gpu_session import TRAIN_OPTIONS, _best_fast_step, _usable, make_skeleton  # noqa: E402
from lab.script_tools import latest_speed_result, run_logged  # noqa: E402
from metazoo.bench.results import load_results  # noqa: E402
from metazoo.bench.suite import Cell, load_suite  # noqa: E402
from metazoo.cards import learner_card  # noqa: E402

#: Fast-step contenders checked and timed, fastest on the H200 first (speed-nvidia-h200-*.json).
CONTENDERS = (
    "metazoo-compiled+channels-last+batched-wgrad",
    "metazoo-compiled+channels-last",
    "metazoo-auto+channels-last",
)
#: The speed-lab shape whose meta-gradient check stands for each way count.
CHECK_SHAPE = {5: "omniglot-5w1s", 20: "omniglot-20w1s"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="rehearse on the CPU, tiny")
    parser.add_argument("--preset", default="paper-maml-omniglot", help="a paper-* preset")
    parser.add_argument("--cells", nargs="+", help="only these cells, as learner@benchmark")
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, help="fast steps to check")
    parser.add_argument("--tf32", action="store_true", help="let a checked TF32 step train")
    parser.add_argument("--minutes-per-cell", type=float, default=2.0, help="training time a cell")
    parser.add_argument("--overhead", type=float, default=75.0, help="seconds a cell beyond it")
    parser.add_argument("--check-limit", type=float, default=150.0, help="seconds for step 1")
    parser.add_argument("--total", type=float, default=560.0, help="hard limit for all (seconds)")
    parser.add_argument("--data-skeleton", help="gzipped PNG list (see gpu_session.py)")
    return parser.parse_args(argv)


def _chosen_cells(args: argparse.Namespace) -> list[Cell]:
    cells = load_suite(args.preset).cells()
    if args.cells:
        known = {f"{c.learner}@{c.benchmark}" for c in cells}
        unknown = sorted(set(args.cells) - known)
        if unknown:
            raise SystemExit(f"--cells {unknown}: not cells of {args.preset}; choose from {known}")
        cells = [c for c in cells if f"{c.learner}@{c.benchmark}" in args.cells]
    return cells[:1] if args.dry_run else cells


def _ways(benchmark: str) -> int:
    from metazoo.cards import benchmark_card

    return int(benchmark_card(benchmark)["ways"])


def _check(args: argparse.Namespace, cells: list[Cell], out: Path, device: str) -> dict[int, str]:
    """Step 1: the float64 check and timing per shape; the fast step chosen per way count."""
    chosen = {}
    for ways in sorted({_ways(c.benchmark) for c in cells}):
        shape = CHECK_SHAPE[ways]
        speed = [sys.executable, "-m", "lab.speed", "--device", device, "--shapes", shape]
        speed += ["--out", str(out / f"check-{shape}")]
        if args.dry_run:
            speed += ["--quick", "--tasks", "2", "--threads", "1", "--contenders", "metazoo-auto"]
            speed += ["--repeats", "1", "--warmup", "0", "--min-run", "0.01"]
        else:
            speed += ["--contenders", *args.contenders, "--repeats", "2", "--min-run", "0.3"]
        run_logged(speed, args.check_limit, out / f"check-{shape}.log")
        document = latest_speed_result(out / f"check-{shape}") or {"shapes": []}
        best = _best_fast_step(document, args.tf32)[0]
        rows = {r["name"]: r for s in document["shapes"] for r in s["contenders"]}
        if best not in rows or not _usable(rows[best], args.tf32):  # never train unchecked
            raise SystemExit(
                f"no fast step passed the float64 check at {shape}; see "
                f"{out / f'check-{shape}.log'} (or pass --contenders with others)"
            )
        chosen[ways] = best
    return chosen


def _suite_file(
    args: argparse.Namespace, cells: list[Cell], steps: dict[int, str], out: Path, minutes: float
) -> Path:
    """Step 2's suite: the preset's file with its runs cut to ``cells`` and the GPU settings."""
    preset = load_suite(args.preset)
    data = yaml.safe_load(preset.path.read_text(encoding="utf-8"))
    wanted = {(c.learner, c.benchmark) for c in cells}
    runs = []
    for run in data["runs"]:
        learners = [name for name in run["learners"] if (name, run["benchmark"]) in wanted]
        if learners:
            options = TRAIN_OPTIONS[steps[_ways(run["benchmark"])]]
            gpu = dict(option.split("=") for option in options)
            gpu = {key: value == "true" for key, value in gpu.items()}
            train = {**(run.get("train") or {}), "fast_step": True, "max_minutes": minutes}
            train.update({"tf32": False, **gpu, "sample_on_device": not args.dry_run})
            if args.dry_run:
                train.update(steps=2, meta_batch=2, val_every=2, val_episodes=2, log_every=1)
            runs.append({**run, "learners": learners, "train": train})
    data["runs"] = runs
    if args.dry_run:
        data["eval"] = {**(data.get("eval") or {}), "episodes": 4}
    data["deviations"] = [
        *data.get("deviations", []),
        f"Trained for at most {minutes:g} minutes per cell on one GPU "
        f"(lab/gpu/gpu_paper_rows.py), the paper's iterations where they fit.",
    ]
    path = out / f"{args.preset}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _table(results: Path, steps: dict[int, str]) -> list[str]:
    """Step 3: one line per finished cell, from its result file."""
    lines = [
        "| learner | benchmark | ours (95% CI) | paper | status | steps | train min | step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in load_results(results) if results.is_dir() else []:
        if record.get("status") != "ok":
            lines.append(f"| {record['learner']} | {record['benchmark']} | failed: "
                         f"{record.get('error', '')[:80]} | | | | | |")  # fmt: skip
            continue
        result, trained = record["result"], record["train"]
        paper = (learner_card(record["learner"]).get("results") or {}).get(record["benchmark"])
        status = paper_status(result["mean"], result["ci95"], paper)
        step = steps.get(_ways(record["benchmark"]), "?")
        precision = "tf32" if trained["config"].get("tf32") else "fp32"
        lines.append(
            f"| {record['learner']} | {record['benchmark']} | {result['mean']:.2f} ± "
            f"{result['ci95']:.2f} | {paper['value'] if paper else '–'} | {status} | "
            f"{trained['final_step']} | {trained['seconds'] / 60:.1f} | {step} ({precision}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    began = time.perf_counter()
    device = "cpu" if args.dry_run else "cuda"
    from metazoo.evaluation.provenance import environment_tag

    out_env = os.environ.get("OUT")
    out = Path(out_env) if out_env else REPO / "benchmarks" / "results" / "paper"
    out.mkdir(parents=True, exist_ok=True)
    results = out / f"{args.preset}-{environment_tag(device)}"
    if args.data_skeleton:
        make_skeleton(Path(args.data_skeleton), Path("/tmp/metazoo-data"))
    cells = _chosen_cells(args)
    steps = _check(args, cells, out, device)
    left = args.total - (time.perf_counter() - began)
    per_cell = 60 * args.minutes_per_cell + args.overhead
    fits = cells if args.dry_run else cells[: max(1, math.floor(left / per_cell))]
    minutes = 0.25 if args.dry_run else args.minutes_per_cell
    print(f"\n{len(fits)} of {len(cells)} cells fit the {left:.0f} s left; fast steps {steps}")
    suite = _suite_file(args, fits, steps, out, minutes)
    bench = [sys.executable, "-m", "metazoo", "bench", str(suite), "--device", device]
    bench += ["--out", str(results), "--quiet", "--no-download", "--allow-dirty"]
    bench += ["--threads", "1"] if args.dry_run else []
    run_logged(bench, max(30.0, args.total - (time.perf_counter() - began)), out / "bench.log")
    lines = _table(results, steps)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print(f"\n## {args.preset} on {environment_tag(device)} ({results})\n")
    print("\n".join(lines))
    return 0 if len(lines) > 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
