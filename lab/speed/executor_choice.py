"""Does ``executor='auto'`` pick the fastest executor? ms per MAML training step, side by side.

    python lab/speed/executor_choice.py              # one thread, 20 timed steps per executor
    python lab/speed/executor_choice.py --steps 5 --rounds 3 --threads 2

For MAML on the quickstart's two shapes (sinusoid: meta-batch 25, MLP 1-40-40-1; Omniglot
5-way 1-shot: Conv-4 with 32 filters, meta-batch 8; synthetic episodes of the cards' shapes),
each executor trains its own copy of one learner through the trainer's step
(:class:`metazoo.engine.fast.FastMetaStep`, Adam): ``sequential``, ``vectorized`` (whole
meta-batch) and ``auto`` (measured once, in a fresh cache, before the timed steps; its one-time
measurement is printed apart). Executors run in turns (``--rounds``), so a machine's load drifts
over all alike; each figure is the median round. The last column is auto's time over the fastest
executor's (issue 28's target: at most 1.2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

#: (label, benchmark, build options): the quickstart's MAML cells.
SHAPES = (
    ("sinusoid, meta-batch 25, MLP 1-40-40-1", "sinusoid", {}, 25),
    ("omniglot-5w1s, meta-batch 8, Conv-4 32f", "omniglot-5w1s", {"hidden": 32}, 8),
)
EXECUTORS = ("sequential", "vectorized", "auto")


def _stepper(benchmark: str, backbone: dict, meta_batch: int, executor: str):
    from metazoo.bench.speed_episodes import benchmark_episodes
    from metazoo.build import build_learner
    from metazoo.engine.fast import FastMetaStep, FastOptions

    learner = build_learner(
        "maml", benchmark, seed=0, backbone_options=backbone or None, executor=executor
    )
    batch = benchmark_episodes(benchmark, 1, meta_batch=meta_batch, seed=0)[0]
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    tick = time.perf_counter()
    step = FastMetaStep(learner, optimizer, batch, FastOptions(executor=executor))
    step(batch, 0)  # builds the step (auto: measures the executors) and warms up
    return step, batch, time.perf_counter() - tick


def measure(steps: int, rounds: int) -> list[dict]:
    rows = []
    for label, benchmark, backbone, meta_batch in SHAPES:
        made = {e: _stepper(benchmark, backbone, meta_batch, e) for e in EXECUTORS}
        times: dict[str, list[float]] = {e: [] for e in EXECUTORS}
        for _ in range(rounds):
            for executor, (step, batch, _) in made.items():
                tick = time.perf_counter()
                for i in range(steps):
                    step(batch, i + 1)
                times[executor].append((time.perf_counter() - tick) / steps * 1000)
        ms = {e: statistics.median(t) for e, t in times.items()}
        auto_step = made["auto"][0]
        rows.append(
            {
                "shape": label,
                **ms,
                "auto chose": f"{auto_step.plan.executor}"
                + (f"/{auto_step.plan.chunk}" if auto_step.plan.chunk else ""),
                "auto/fastest": ms["auto"] / min(ms["sequential"], ms["vectorized"]),
                "auto first step s": made["auto"][2],
                "timings": auto_step.plan.reason,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns over the executors")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["METAZOO_CACHE"] = tempfile.mkdtemp(prefix="executor-choice-")  # measure afresh
    rows = measure(args.steps, args.rounds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"MAML training step, ms/step, {args.threads} thread(s), load average {load:.1f}")
    print("| shape | sequential | vectorized | auto | auto chose | auto/fastest |")
    print("|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(
            f"| {r['shape']} | {r['sequential']:.1f} | {r['vectorized']:.1f} | {r['auto']:.1f} "
            f"| {r['auto chose']} | {r['auto/fastest']:.2f} |"
        )
    for r in rows:
        print(f"{r['shape']}: auto's first step {r['auto first step s']:.1f} s, {r['timings']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
