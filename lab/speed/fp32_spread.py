"""How far fp32 meta-gradients are from float64 on several batches of one shape, per executor.

    python lab/speed/fp32_spread.py --shape miniimagenet-5w1s --batches 6

For each synthetic batch of a speed-lab shape (seeds 0, 1, ...), prints the relative error
of the sequential and the vectorized executors' fp32 meta-gradients against the sequential float64
one (same weights and batch), and the float64 vectorized one against it. A speed run checks one
batch; this shows whether an executor's miss there is the executor (always worse than the
sequential loop) or the batch's conditioning (both executors move together from batch to batch).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import torch  # noqa: E402

from lab.speed.shapes import get_shapes, make_model, synthetic_batches  # noqa: E402
from metazoo.engine import (  # noqa: E402
    InnerLoop,
    MetaParams,
    accumulate_meta_gradient,
    parameters_of,
)

EXECUTORS = ("sequential", "vectorized")


def _meta_gradient(model, batch, loop, lr, executor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    meta = MetaParams(parameters_of(model), lr)
    accumulate_meta_gradient(model, batch, loop, meta, executor=executor)
    return torch.cat([p.grad.flatten().double() for p in model.parameters()])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape",
        default="miniimagenet-5w1s",
        help="a speed-lab shape (lab/speed/shapes.py)",
    )
    parser.add_argument("--batches", type=int, default=6, help="batches (seeds 0..N-1)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = get_shapes([args.shape])[0]
    model = make_model(shape)
    exact = copy.deepcopy(model).double()
    loop = InnerLoop(steps=shape.inner_steps)
    print(f"{shape.name}: {shape.describe()}; CPU, {args.threads} threads")
    print("| batch seed | fp32 sequential | fp32 vectorized | float64 vectorized |")
    print("|---|---|---|---|")
    for seed in range(args.batches):
        batch = synthetic_batches(shape, 1, seed=seed)[0]
        wide = batch.float_as(torch.float64)
        reference = _meta_gradient(exact, wide, loop, shape.inner_lr, "sequential")
        errors = [
            _relative(_meta_gradient(model, batch, loop, shape.inner_lr, e), reference)
            for e in EXECUTORS
        ]
        vectorized = _meta_gradient(exact, wide, loop, shape.inner_lr, "vectorized")
        row = [f"{e:.1e}" for e in (*errors, _relative(vectorized, reference))]
        print(f"| {seed} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
