"""Which lowering of a per-task convolution is fastest, to second order: a diagnosis for issue 7.

    python lab/speed/conv_lowering.py                         # CUDA, omniglot-5w1s's Conv-4
    python lab/speed/conv_lowering.py --device cpu --tasks 2  # a rehearsal on the CPU

After one inner step every task has its own weights, so the query pass of a vectorized MAML step
convolves task t's images with task t's weights. ``vmap`` lowers that to one grouped convolution
(groups = tasks). This times, per Conv-4 layer, the forward, the create-graph backward and the
second backward (what a second-order meta-gradient runs) for:

* ``grouped`` / ``grouped-nhwc``: ``vmap(F.conv2d)`` in NCHW / channels-last (what the engine runs);
* ``grouped-bench``: the same in channels-last with ``cudnn.benchmark`` on;
* ``batched-wgrad`` / ``batched-wgrad-nhwc``: ``vmap`` under
  :func:`metazoo.experimental.taskconv.batched_weight_gradients` (grouped convolutions, weight gradients
  as one ``bmm``; what ``FastOptions(batched_weight_gradients=True)`` runs);
* ``matmul-conv-nhwc``: the same with the experimental ``lowering="matmul"`` (no grouped
  convolution left; :mod:`metazoo.experimental.lowerings`, imported here);
* ``triton`` / ``triton-nhwc``: with the experimental ``lowering="triton"``, all three as
  implicit-GEMM Triton kernels (:mod:`metazoo.experimental.implicit_gemm`; CUDA only, autotuned
  on first use);
* ``unfold-bmm``: :func:`metazoo.experimental.lowerings.task_convolution` (im2col and one batched
  product over tasks), differentiated by autograd;
* ``task-loop``: one ordinary convolution per task.

Each lowering's output and both gradients are checked against ``grouped`` first (relative error
printed; a case that fails is reported and the others go on), then timed with CUDA events
(median of ``--repeats``), fp32 with TF32 off. On CUDA each case is captured in a CUDA graph
first, as the fast step is, so launch overhead does not count; a case that cannot be captured is
timed eagerly and marked so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from lab.speed.shapes import get_shapes  # noqa: E402
from metazoo.experimental.lowerings import task_convolution  # noqa: E402  (registers matmul, triton)
from metazoo.experimental.taskconv import Settings, batched_weight_gradients  # noqa: E402

Conv = Callable[
    [Tensor, Tensor], Tensor
]  # (T, N, Cin, H, W), (T, Cout, Cin, 3, 3) -> (T, N, Cout, H, W)


def grouped(x: Tensor, w: Tensor) -> Tensor:
    return torch.func.vmap(lambda xi, wi: F.conv2d(xi, wi, padding=1))(x, w)


def lowered(lowering: str, x: Tensor, w: Tensor) -> Tensor:
    with batched_weight_gradients(lowering):
        return grouped(x, w)


def unfold_bmm(x: Tensor, w: Tensor) -> Tensor:
    """taskconv's im2col product, its gradients left to autograd (no custom backward)."""
    return task_convolution(x, w, Settings((1, 1), (1, 1), (1, 1)))


def task_loop(x: Tensor, w: Tensor) -> Tensor:
    return torch.stack([F.conv2d(xi, wi, padding=1) for xi, wi in zip(x, w, strict=True)])


def second_order(conv: Conv, x: Tensor, w: Tensor, r: Tensor, v: Tensor) -> list[Tensor]:
    """Forward, create-graph backward, then the backward of a function of both gradients."""
    y = conv(x, w)
    gx, gw = torch.autograd.grad((y * r).sum(), (x, w), create_graph=True)
    again = torch.autograd.grad((gw * v).sum() + (gx * x.detach()).sum(), (x, w))
    return [y.detach(), gx.detach(), gw.detach(), *again]


def _graphed(fn: Callable[[], list[Tensor]]) -> tuple[Callable[[], list[Tensor]], str]:
    """``fn`` captured in a CUDA graph (warmed up on a side stream), or ``fn`` itself if that
    fails."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            outputs = fn()
    except RuntimeError as error:
        return fn, f" (eager: {str(error).splitlines()[0][:60]})"

    def replay() -> list[Tensor]:
        graph.replay()
        return outputs

    return replay, ""


def _timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            import time

            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def _error(got: list[Tensor], want: list[Tensor]) -> float:
    return max(float((g - e).norm() / e.norm().clamp_min(1e-30)) for g, e in zip(got, want))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape", default="omniglot-5w1s", help="a speed-lab shape (lab/speed/shapes.py)"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tasks", type=int, help="override the meta-batch size")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    shape = get_shapes([args.shape])[0]
    tasks, device = args.tasks or shape.meta_batch, torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    queries = shape.ways * shape.queries
    channels, size = shape.image_shape[0], shape.image_shape[1]
    gen = torch.Generator().manual_seed(0)
    print(f"{shape.name}: {tasks} tasks x {queries} query images, {device}, fp32 (TF32 off)")
    print("| layer | lowering | rel. error | ms (fwd + 2 bwd) | x grouped |\n|---|---|---|---|---|")
    totals: dict[str, float] = {}
    for layer in range(4):
        xs = torch.randn(tasks, queries, channels, size, size, generator=gen)
        ws = torch.randn(tasks, shape.hidden, channels, 3, 3, generator=gen) / (3 * channels**0.5)
        x, w = xs.to(device).requires_grad_(), ws.to(device).requires_grad_()
        r = torch.randn(tasks, queries, shape.hidden, size, size, generator=gen).to(device)
        v = torch.randn(ws.shape, generator=gen).to(device)
        xl, wl = (t.flatten(0, 1).contiguous(memory_format=torch.channels_last) for t in (xs, ws))
        xl = xl.unflatten(0, (tasks, queries)).to(device).requires_grad_()
        wl = wl.unflatten(0, (tasks, shape.hidden)).to(device).requires_grad_()
        cases = {
            "grouped": partial(second_order, grouped, x, w, r, v),
            "grouped-nhwc": partial(second_order, grouped, xl, wl, r, v),
            "batched-wgrad": partial(second_order, partial(lowered, "grouped"), x, w, r, v),
            "batched-wgrad-nhwc": partial(second_order, partial(lowered, "grouped"), xl, wl, r, v),
            "matmul-conv-nhwc": partial(second_order, partial(lowered, "matmul"), xl, wl, r, v),
            "unfold-bmm": partial(second_order, unfold_bmm, x, w, r, v),
            "task-loop": partial(second_order, task_loop, x, w, r, v),
        }
        if device.type == "cuda":  # the interpreter would take minutes on a CPU
            cases["triton"] = partial(second_order, partial(lowered, "triton"), x, w, r, v)
            cases["triton-nhwc"] = partial(second_order, partial(lowered, "triton"), xl, wl, r, v)
        reference = cases["grouped"]()
        base = None
        for name, fn in [*cases.items(), ("grouped-bench", cases["grouped-nhwc"])]:
            torch.backends.cudnn.benchmark = name == "grouped-bench"
            try:
                fn, note = _graphed(fn) if device.type == "cuda" else (fn, "")
                error = _error(fn(), reference)
                ms = _timed(fn, args.repeats, device)
            except Exception as failure:  # noqa: BLE001  (report it; time the other lowerings)
                print(f"| {layer + 1} | {name} | failed: {str(failure).splitlines()[0][:80]} | | |")
                continue
            base = base or ms
            totals[name] = totals.get(name, 0.0) + ms
            where = f"{layer + 1} ({channels}->{shape.hidden}, {size}px)"
            print(f"| {where} | {name}{note} | {error:.1e} | {ms:.3f} | {base / ms:.2f} |")
        torch.backends.cudnn.benchmark = False
        channels, size = shape.hidden, size // 2
    print("\n| lowering | ms, all four layers | x grouped |\n|---|---|---|")
    for name, ms in totals.items():
        print(f"| {name} | {ms:.3f} | {totals['grouped'] / ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
