"""Compile metazoo's Triton kernels for a GPU without one: each autotune tile's registers, spills.

    python benchmarks/triton_kernels.py                # sm_90 (H100/H200): fp32, 3xTF32, TF32
    python benchmarks/triton_kernels.py --arch 80 --dtypes fp32 bf16 fp64

Triton's interpreter checks the kernels' values on a CPU (``tests/unit/engine``) but not that
they compile for a GPU, nor what they cost there. This compiles each kernel of
:mod:`metazoo.engine.implicit_gemm_kernels` ahead of time (Triton's bundled ``ptxas``), for both
reductions (taps outer, flattened), each dtype and each autotune tile, and reads the cubin's
registers and spill stack (``cuobjdump``). A spill of more than :data:`SPILL_LIMIT` bytes on the
taps-outer path (every layer but the first), in a dtype that trains, means local-memory traffic
in the hot loop: it fails the run, as does any compile error. (Triton 3.6, the GPU machines'
version, spills 8 to 16 bytes in a few tiles; 3.8 none; the tiles these replaced spilled
hundreds.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from metazoo.engine import implicit_gemm, implicit_gemm_kernels  # noqa: E402

#: ``--dtypes`` choices: (pointer type, accumulator, dot input precision).
DTYPES = {
    "fp32": ("*fp32", tl.float32, "ieee"),
    "tf32": ("*fp32", tl.float32, "tf32"),
    "3xtf32": ("*fp32", tl.float32, "tf32x3"),
    "bf16": ("*bf16", tl.float32, "ieee"),
    "fp64": ("*fp64", tl.float64, "ieee"),
}
#: Spill bytes a taps-outer tile may have (a few loop-invariant values, not the operand tiles).
SPILL_LIMIT = 64
KERNELS = {
    "convolution": implicit_gemm_kernels.convolution_kernel,
    "input_gradient": implicit_gemm_kernels.input_gradient_kernel,
    "weight_gradient": implicit_gemm_kernels.weight_gradient_kernel,
}


def _source(kernel, dtype: str, taps_outer: bool, tile: dict) -> ASTSource:
    pointer, accumulator, precision = DTYPES[dtype]
    constants = dict(KH=3, KW=3, TAPS_OUTER=taps_outer, ACC=accumulator, PRECISION=precision)
    constants.update(tile)
    names = kernel.arg_names
    signature, constexprs = {}, {}
    for index, name in enumerate(names):
        if name in constants:
            signature[name] = "constexpr"
            constexprs[(index,)] = constants[name]
        elif name == "parts":  # the weight gradient's partial sums, in the accumulator's type
            signature[name] = "*fp64" if accumulator == tl.float64 else "*fp32"
        elif index < 3:
            signature[name] = pointer
        else:
            signature[name] = "i32"
    return ASTSource(fn=kernel, signature=signature, constexprs=constexprs)


def _usage(cubin: bytes) -> dict[str, int]:
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as file:
        file.write(cubin)
    try:
        out = subprocess.run(
            [str(tool), "--dump-resource-usage", file.name], capture_output=True, text=True
        ).stdout
    finally:
        os.unlink(file.name)
    line = next(line for line in out.splitlines() if "REG:" in line)
    fields = dict(part.split(":", 1) for part in line.split() if ":" in part)
    return {"registers": int(fields["REG"]), "spill_bytes": int(fields["STACK"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x 10")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["fp32", "3xtf32", "tf32"])
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    args = parser.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    print(f"sm_{args.arch}, autotune tiles of metazoo.engine.implicit_gemm\n")
    print("| kernel | reduction | dtype | tile (M, N, K), warps | registers | spill bytes |")
    print("|---|---|---|---|---|---|")
    failures = []
    for name in args.kernels:
        for taps_outer in (True, False):
            for dtype in args.dtypes:
                for config in implicit_gemm._configs():
                    tile = config.kwargs
                    source = _source(KERNELS[name], dtype, taps_outer, tile)
                    options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
                    reduction = "taps outer" if taps_outer else "flattened"
                    where = f"| {name} | {reduction} | {dtype} | {tuple(tile.values())}, "
                    where += f"{config.num_warps} |"
                    try:
                        compiled = triton.compile(source, target=target, options=options)
                        usage = _usage(compiled.asm["cubin"])
                    except Exception as error:  # noqa: BLE001  (report every failure, then fail)
                        print(f"{where} failed: {str(error).splitlines()[-1][:100]} | |")
                        failures.append(where)
                        continue
                    print(f"{where} {usage['registers']} | {usage['spill_bytes']} |", flush=True)
                    hot = taps_outer and dtype != "fp64"  # float64 is for checking values
                    if hot and usage["spill_bytes"] > SPILL_LIMIT:
                        failures.append(where)
    print(f"\n{len(failures)} failing (a compile error, or > {SPILL_LIMIT} spill bytes taps outer)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
