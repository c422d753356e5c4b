"""Engine checks that need a GPU: gates on CUDA, TF32's effect on meta-gradients, executor speed.

1. float64 on CUDA: MAML, ANIL and Meta-SGD meta-gradients (tiny conv net with BatchNorm, 3 inner
   steps) against central finite differences, sequential and vectorized executors.
2. float32 Conv-4 (64 filters, 28x28, 5-way 1-shot, 15 queries, meta-batch 32, 1 inner step
   alpha=0.4): relative error of the MAML meta-gradient against float64, with TF32 off
   (``metazoo.engine.reproducible()``) and on.
3. Seconds per meta-gradient of both executors on that workload (TF32 off).

Writes ``benchmarks/results/engine-gpu-check-<environment>.json`` (or ``$OUT/...`` when set).
Run: ``python lab/reproductions/gpu_engine_check.py`` on a CUDA machine (about a minute).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

import metazoo
from metazoo import engine
from metazoo.episode import EpisodeBatch
from metazoo.evaluation.provenance import environment, environment_tag
from metazoo.models import make_backbone
from metazoo.testing import check_meta_gradient, tiny_learner

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fd_gates() -> dict:
    torch.set_default_dtype(torch.float64)
    out = {}
    for name in ("maml", "anil", "metasgd"):
        for executor in ("sequential", "vectorized"):
            learner, batch = tiny_learner(name, "conv", 3, executor=executor)
            report = check_meta_gradient(learner.to(DEVICE), batch.to(DEVICE))
            out[f"{name}/{executor}"] = report.max_error
            print(name, executor, report.max_error, flush=True)
    torch.set_default_dtype(torch.float32)
    return out


def omniglot_batch(tasks: int = 32, seed: int = 0) -> EpisodeBatch:
    g = torch.Generator().manual_seed(seed)
    sx, qx = (
        torch.rand(tasks, 5, 1, 28, 28, generator=g),
        torch.rand(tasks, 75, 1, 28, 28, generator=g),
    )
    sy = torch.arange(5).expand(tasks, -1).clone()
    qy = torch.arange(5).repeat_interleave(15).expand(tasks, -1).clone()
    return EpisodeBatch(sx, sy, qx, qy, 5).to(DEVICE)


def meta_grad(learner, batch) -> torch.Tensor:
    learner.zero_grad()
    learner.meta_loss(batch)[0].backward()
    return torch.cat([p.grad.flatten() for p in learner.parameters()])


def tf32_effect() -> dict:
    torch.manual_seed(0)
    model = make_backbone("conv4", (1, 28, 28), out_features=5).to(DEVICE)
    learner = metazoo.create_learner("maml", model, inner_lr=0.4, executor="vectorized")
    batch = omniglot_batch()
    ref = meta_grad(
        learner.double(),
        EpisodeBatch(
            *(
                t.double() if t.is_floating_point() else t
                for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
            ),
            5,
        ),
    )
    learner.float()
    out = {}
    for label, on in (("tf32_off", False), ("tf32_on", True)):
        with engine.reproducible(enabled=not on):
            g = meta_grad(learner, batch).double()
            out[label] = {
                "relative_error_vs_float64": float((g - ref).norm() / ref.norm()),
                "precision": engine.precision_mode(),
            }
    return out


def executor_speed() -> dict:
    torch.manual_seed(0)
    model = make_backbone("conv4", (1, 28, 28), out_features=5).to(DEVICE)
    batch = omniglot_batch()
    out = {}
    with engine.reproducible():
        for executor in ("sequential", "vectorized"):
            learner = metazoo.create_learner("maml", model, inner_lr=0.4, executor=executor)
            for _ in range(2):
                meta_grad(learner, batch)
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(5):
                meta_grad(learner, batch)
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
            out[executor] = (time.perf_counter() - start) / 5
            print(executor, out[executor], flush=True)
    return {
        "seconds_per_meta_gradient": out,
        "meta_batch": 32,
        "workload": "Conv-4 64f, 5-way 1-shot 15 queries, 1 inner step",
    }


def main() -> None:
    result = {"environment": environment(DEVICE)}
    result["fd_gates_float64_max_error"] = fd_gates()
    result["tf32"] = tf32_effect()
    result["executors"] = executor_speed()
    folder = Path(
        os.environ.get("OUT") or Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    )
    path = folder / f"engine-gpu-check-{environment_tag(DEVICE)}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result, indent=1, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
