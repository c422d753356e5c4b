"""Sampler speed: milliseconds per meta-batch (median of many, after warm-up), and the Omniglot decode.

Run ``python lab/speed/sampler_speed.py`` (CPU, one thread: the target is a 32-task 5-way 1-shot
15-query Omniglot meta-batch in under 2 ms) or ``--device cuda``. Results go to
``benchmarks/results/sampler-speed-<environment>.json`` and a Markdown table generated from that file
to ``benchmarks/tables/sampler-speed-<environment>.md`` (``--table FILE.json`` regenerates a table).
Without an Omniglot copy (``$METAZOO_DATA/omniglot-py``) the Omniglot rows use random images of the
same shape (1028 characters x 20 images, 28x28), marked ``synthetic`` in the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from metazoo.data import EpisodeSampler, SamplerConfig, episode_loader, from_tensors, make_sampler
from metazoo.data.omniglot import load_omniglot
from metazoo.data.paths import data_root
from metazoo.evaluation.provenance import environment, environment_tag

DATA = Path(__file__).resolve().parents[2] / "benchmarks"  # results/ and tables/

# (row name, benchmark, tasks per meta-batch, sampler overrides)
CASES = [
    ("omniglot 5w1s15q x32 (target)", "omniglot-5w1s", 32, {}),
    ("omniglot 5w5s15q x32", "omniglot-5w5s", 32, {}),
    ("omniglot 20w1s15q x16", "omniglot-20w1s", 16, {}),
    ("omniglot 5w1s x32 hierarchy=within", "omniglot-5w1s", 32, {"hierarchy": "within"}),
    ("omniglot 5w1s x32 meta_batch_diversity", "omniglot-5w1s", 32, {"meta_batch_diversity": True}),
    ("omniglot 5w1s x32 train-train", "omniglot-5w1s", 32, {"mode": "train-train"}),
    ("omniglot 5w1s x32 augment=flip-shift", "omniglot-5w1s", 32, {"augment": "flip-shift"}),
    ("sinusoid 10+10 x25", "sinusoid", 25, {}),
]


def synthetic_omniglot() -> object:
    """Random images shaped like Omniglot's Vinyals train split, 33 alphabets."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1028 * 20, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(1028).repeat_interleave(20)
    return from_tensors(images, labels, torch.arange(1028) % 33, name="omniglot-synthetic")


def make(benchmark: str, overrides: dict, device: str, synthetic: bool):
    if benchmark.startswith("omniglot") and synthetic:
        from metazoo.cards import benchmark_card

        card = benchmark_card(benchmark)
        config = SamplerConfig(card["ways"], card["shots"], card["queries"], rotations=True)
        for key, value in {**overrides, "device": device}.items():
            setattr(config, key, value)
        return EpisodeSampler(SYNTHETIC, config, benchmark, "train", 0)
    return make_sampler(benchmark, "train", 0, device=device, **overrides)


def time_batches(sampler, tasks: int, repeats: int, warmup: int, device: str) -> list[float]:
    """Milliseconds of each of ``repeats`` fresh meta-batches (batch indices never repeat)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for index in range(warmup):
        sampler.batch(index, tasks)
    sync()
    times = []
    for index in range(warmup, warmup + repeats):
        start = time.perf_counter()
        batch = sampler.batch(index, tasks)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
        del batch
    return times


def loader_throughput(sampler, tasks: int, batches: int, workers: int) -> float:
    """Meta-batches per second through the DataLoader path with ``workers`` processes."""
    loader = episode_loader(sampler, tasks, batches, num_workers=workers)
    start = time.perf_counter()
    count = sum(1 for _ in loader)
    return count / (time.perf_counter() - start)


def decode_seconds(workers: int) -> float:
    """Seconds to decode all 32460 Omniglot PNGs into a fresh (temporary) cache."""
    old = os.environ.get("METAZOO_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["METAZOO_CACHE"] = cache
        try:
            start = time.perf_counter()
            load_omniglot(workers=workers)
            return time.perf_counter() - start
        finally:
            if old is None:
                del os.environ["METAZOO_CACHE"]
            else:
                os.environ["METAZOO_CACHE"] = old


def fingerprint(sampler, tasks: int) -> str:
    """sha256 of meta-batch 0's tensors (moved to the CPU): equal fingerprints = equal episodes."""
    batch = sampler.batch(0, tasks)
    digest = hashlib.sha256()
    for tensor in (batch.support_x, batch.support_y, batch.query_x, batch.query_y, batch.classes):
        if tensor is not None:
            digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    """The CPU model name (Linux), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    synthetic = not (data_root() / "omniglot-py" / "images_background").is_dir()
    if synthetic:
        global SYNTHETIC
        SYNTHETIC = synthetic_omniglot()
    rows = []
    for name, benchmark, tasks, overrides in CASES:
        sampler = make(benchmark, overrides, args.device, synthetic)
        times = time_batches(sampler, tasks, args.repeats, args.warmup, args.device)
        quartiles = statistics.quantiles(times, n=10)
        rows.append(
            {
                "case": name,
                "benchmark": benchmark,
                "tasks": tasks,
                "overrides": {k: v for k, v in overrides.items()},
                "median_ms": statistics.median(times),
                "p10_ms": quartiles[0],
                "p90_ms": quartiles[-1],
                "tasks_per_s": tasks / (statistics.median(times) / 1e3),
                "fingerprint": fingerprint(sampler, tasks),
            }
        )
        print(
            f"{name:45s} {rows[-1]['median_ms']:8.3f} ms  (p10 {quartiles[0]:.3f}, p90 {quartiles[-1]:.3f})"
        )
    result = {
        "what": "sampler speed: milliseconds per meta-batch, median over fresh batches after warm-up",
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "omniglot_data": "synthetic" if synthetic else "real",
        "environment": environment(args.device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "rows": rows,
    }
    if args.device == "cpu":
        sampler = make("omniglot-5w1s", {}, "cpu", synthetic)
        result["loader_batches_per_s"] = {
            str(w): loader_throughput(sampler, 32, args.loader_batches, w) for w in (0, 2)
        }
        print("DataLoader meta-batches/s:", result["loader_batches_per_s"])
    if args.decode and not synthetic:
        result["omniglot_decode_s"] = {str(w): decode_seconds(w) for w in (1, 2)}
        print("Omniglot decode seconds by worker count:", result["omniglot_decode_s"])
    return result


def table(result: dict) -> str:
    """The Markdown table of a result file."""
    env = result["environment"]
    load = result.get("load_average_1min")
    host = f"{result.get('cpu_model', '?')}, {result.get('cpu_count', '?')} cores"
    if load:
        host += (
            f", 1-min load average {load[0]:.1f} before / {load[1]:.1f} after (a shared machine)"
        )
    lines = [
        f"Sampler speed on {env['device_name']} [{host}] (torch {env['torch']}, {result['threads']} thread(s), "
        f"Omniglot data: {result['omniglot_data']}; median of {result['repeats']} fresh meta-batches "
        f"after {result['warmup']} warm-up; git {(env.get('git') or {}).get('sha', '?')[:10]}).",
        "",
        "| case | tasks | median ms | p10 ms | p90 ms | tasks/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['case']} | {row['tasks']} | {row['median_ms']:.3f} | {row['p10_ms']:.3f} | "
            f"{row['p90_ms']:.3f} | {row['tasks_per_s']:.0f} |"
        )
    if "loader_batches_per_s" in result:
        speeds = ", ".join(
            f"{w} workers: {v:.0f}" for w, v in result["loader_batches_per_s"].items()
        )
        lines += ["", f"DataLoader path, 32-task Omniglot meta-batches per second: {speeds}."]
    if "omniglot_decode_s" in result:
        decode = ", ".join(
            f"{w} process(es): {v:.1f} s" for w, v in result["omniglot_decode_s"].items()
        )
        lines += ["", f"First decode of the 32460 Omniglot PNGs to 28x28 (cold cache): {decode}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--loader-batches", type=int, default=200)
    parser.add_argument("--decode", action="store_true", help="also time a cold Omniglot decode")
    parser.add_argument(
        "--out", type=Path, default=DATA, help="folder holding results/ and tables/"
    )
    parser.add_argument("--table", type=Path, help="only regenerate the table of this result file")
    args = parser.parse_args()
    if args.table:
        result = json.loads(args.table.read_text())
        path = args.table.parent.parent / "tables" / args.table.with_suffix(".md").name
    else:
        result = run(args)
        tag = environment_tag(args.device)
        json_path = args.out / "results" / f"sampler-speed-{tag}.json"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        path = args.out / "tables" / f"sampler-speed-{tag}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table(result))
    print(f"wrote {path}")


SYNTHETIC = None

if __name__ == "__main__":
    main()
