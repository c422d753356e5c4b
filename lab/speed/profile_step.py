"""Where the time of one fast meta-training step goes: the top kernels (or CPU ops) by total time.

    python lab/speed/profile_step.py                              # CUDA, omniglot-5w1s
    python lab/speed/profile_step.py --compile --channels-last    # the fastest configuration
    python lab/speed/profile_step.py --device cpu --tasks 2       # a rehearsal on the CPU

Builds a :class:`metazoo.engine.fast.FastMetaStep` for a speed-lab shape (synthetic
episodes, the speed benchmark's model), runs the warm-up steps, then profiles ``--steps`` steps with
``torch.profiler`` and prints the ``--top`` rows sorted by device time (CPU time on a CPU). The
table also goes to ``$OUT/profile-<shape>.txt`` when ``$OUT`` is set. For the next GPU session of
issue 7: the fp32 step is at about half its 2,500 tasks/s target, and this says which kernels to
attack (grouped convolutions under ``vmap``, BatchNorm's elementwise work, or launch gaps).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import metazoo  # noqa: E402
import metazoo.experimental.lowerings  # noqa: E402, F401  (--matmul/--triton-convolutions)
from lab.speed.shapes import get_shapes, make_model, synthetic_batches  # noqa: E402
from metazoo.engine.fast import FAST_STEP_OPTIONS, FastMetaStep, FastOptions  # noqa: E402

try:  # kernel names only; the Triton kernels' module needs triton (Linux)
    from metazoo.experimental import implicit_gemm_kernels  # noqa: E402
except ImportError:
    implicit_gemm_kernels = None

#: Kernel families by name fragment, first match wins (metazoo's own Triton convolutions are named
#: after metazoo.experimental.implicit_gemm_kernels; cuDNN's convolution kernels are "xmma",
#: "implicit" or "conv"; Inductor's fused elementwise and reduction kernels start "triton").
FAMILIES = (
    ("metazoo triton convolution", tuple(getattr(implicit_gemm_kernels, "__all__", ()))),
    ("convolution", ("conv", "xmma", "implicit", "dgrad", "wgrad", "cudnn")),
    ("matrix product", ("gemm", "cutlass", "cublas")),
    ("triton (fused)", ("triton",)),
    ("reduction", ("reduce",)),
    ("elementwise", ("elementwise", "vectorized", "unrolled")),
    ("copy/fill", ("memcpy", "memset", "copy", "fill")),
)


def kernel_summary(rows, wall_us: float) -> str:
    """Device time by kernel family and the share of the wall time the device was busy."""
    kernels = [r for r in rows if not r.key.startswith(("aten::", "cuda", "Torch", "Profiler"))]
    by_family: dict[str, float] = {}
    for row in kernels:
        us = getattr(row, "self_device_time_total", None) or getattr(row, "self_cuda_time_total", 0)
        key = row.key.lower()
        family = next((f for f, parts in FAMILIES if any(p in key for p in parts)), "other")
        by_family[family] = by_family.get(family, 0.0) + us
    busy = sum(by_family.values())
    lines = ["| kernel family | device ms | share |", "|---|---|---|"]
    for family, us in sorted(by_family.items(), key=lambda item: -item[1]):
        lines.append(f"| {family} | {us / 1e3:.2f} | {us / max(busy, 1e-9):.0%} |")
    lines.append(f"device busy {busy / 1e3:.2f} ms of {wall_us / 1e3:.2f} ms wall")
    return "\n".join(lines)


#: The FastOptions switches this script takes, as ``--flag`` (``_`` written ``-``): the trainer's.
SWITCHES = FAST_STEP_OPTIONS


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape", default="omniglot-5w1s", help="a speed-lab shape (lab/speed/shapes.py)"
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tasks", type=int, help="override the meta-batch size")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    parser.add_argument("--top", type=int, default=25, help="rows to print (default 25)")
    for switch in SWITCHES:
        flag = "--" + switch.replace("_", "-")
        parser.add_argument(flag, action="store_true", help=f"FastOptions({switch}=True)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    shape = get_shapes([args.shape])[0]
    shape = shape.scaled(args.tasks) if args.tasks else shape
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32
    model = make_model(shape).to(device)
    batches = synthetic_batches(shape, 2, device=device)
    learner = metazoo.create_learner(
        "maml", model, inner_lr=shape.inner_lr, inner_steps=shape.inner_steps
    )
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3, capturable=device.type == "cuda")
    options = FastOptions(**{switch: getattr(args, switch) for switch in SWITCHES})
    step = FastMetaStep(learner, optimizer, batches[0], options)
    step(batches[1])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    began = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(args.steps):
            step(batches[i % 2])
        sync()
    seconds = (time.perf_counter() - began) / args.steps
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=args.top, max_name_column_width=70)
    chosen = ", ".join(s for s in SWITCHES if getattr(args, s)) or "no switches"
    header = (
        f"{shape.name}: {shape.describe()}; plan {step.plan}; {chosen}; "
        f"graph={step.graph}; {seconds * 1e3:.1f} ms/step under the profiler "
        f"({shape.meta_batch / seconds:.0f} tasks/s)"
    )
    summary = kernel_summary(prof.key_averages(), seconds * args.steps * 1e6)
    print(header, table, summary, sep="\n")
    if os.environ.get("OUT"):
        name = f"profile-{shape.name}{'-compiled' if args.compile else ''}.txt"
        Path(os.environ["OUT"], name).write_text("\n".join((header, table, summary)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
