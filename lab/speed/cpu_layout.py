"""What makes a metric learner's training step fast on a small CPU: threads and memory layout.

    python lab/speed/cpu_layout.py           # about 3 minutes on 2 cores

Times ProtoNet's paper step on Omniglot (60-way 1-shot, 5 queries per class: 360 images through
Conv-4 with 64 filters, forward and backward) in the default NCHW layout and channels-last, with 1
and 2 torch threads. The variants are interleaved round by round, so a load that drifts during the
run hits them alike; the figure is the median over rounds. Writes
``benchmarks/results/cpu-layout-<machine>.json`` and ``benchmarks/tables/cpu-layout-<machine>.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import metazoo  # noqa: E402
from metazoo.data import make_sampler  # noqa: E402
from metazoo.evaluation.provenance import code_version, environment, machine_label  # noqa: E402

VARIANTS = [(threads, layout) for threads in (1, 2) for layout in ("nchw", "channels_last")]


def _step_seconds(learner, batch, optimizer) -> float:
    start = time.perf_counter()
    loss = learner.meta_loss(batch)[0]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def measure(rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step of each variant, one median per round."""
    sampler = make_sampler("omniglot-5w1s", "train", ways=60, shots=1, queries=5)
    batch = sampler.batch(0, 1)
    learners = {}
    for threads, layout in VARIANTS:
        learner = metazoo.build_learner("protonet", "omniglot-5w1s", seed=0)
        if layout == "channels_last":
            learner.to(memory_format=torch.channels_last)
        learners[(threads, layout)] = (learner, torch.optim.Adam(learner.parameters(), 1e-3))
    times: dict[str, list[float]] = {f"{t} thread(s), {lay}": [] for t, lay in VARIANTS}
    for _ in range(rounds):
        for (threads, layout), (learner, optimizer) in learners.items():
            torch.set_num_threads(threads)
            _step_seconds(learner, batch, optimizer)  # warm-up of this variant's kernels
            step = [_step_seconds(learner, batch, optimizer) for _ in range(steps)]
            times[f"{threads} thread(s), {layout}"].append(statistics.median(step))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    args = parser.parse_args(argv)
    version = code_version()
    if version.endswith("-dirty") and args.out == REPO / "benchmarks":
        raise SystemExit(
            f"uncommitted changes ({version}): commit, then measure from the clean tree"
        )
    times = measure(args.rounds, args.steps)
    env = environment()
    label = machine_label(env["machine"]).replace(" ", "-").replace("(", "").replace(")", "")
    label = "".join(c for c in label if c.isalnum() or c in "-.").lower()
    base = min(statistics.median(v) for k, v in times.items() if k.endswith("nchw"))
    lines = [
        "| variant | seconds per step (median of rounds) | speed-up over the fastest NCHW |",
        "|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {base / median:.2f}x |")
    table = "\n".join(lines) + (
        f"\n\nProtoNet, Omniglot 60-way 1-shot 5-query training step (Conv-4, 64 filters); "
        f"{args.rounds} interleaved rounds of {args.steps} steps; {machine_label(env['machine'])}; "
        f"torch {env['torch']}; git {version[:12]}.\n"
    )
    name = f"cpu-layout-{label}"
    results = args.out / "results" / f"{name}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"environment": env, "seconds": times}, indent=1) + "\n")
    tables = args.out / "tables" / f"{name}.md"
    tables.parent.mkdir(parents=True, exist_ok=True)
    tables.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
