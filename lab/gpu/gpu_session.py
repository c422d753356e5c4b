"""Issue 7's GPU session in one command: the speed check at omniglot-5w1s, then a timed MAML run.

    python lab/gpu/gpu_session.py                       # on the GPU machine; installs nothing
    python lab/gpu/gpu_session.py --dry-run             # on a CPU: the same steps, tiny

1. ``python -m lab.speed`` at ``omniglot-5w1s`` (fp32, TF32 off unless a row says otherwise): every
   contender's meta-gradient is checked against float64 first, then timed.
2. The fastest fp32 fast-step configuration that passed the check (or ``--fast-step NAME``, which
   skips step 1) trains MAML on Omniglot 5-way 1-shot with ``metazoo train`` for
   ``--train-minutes`` (the paper's settings: meta-batch 32, one inner step alpha=0.4, Adam 1e-3,
   3 inner steps at test), then tests it on the card's 600 episodes. ``--resume`` goes on with the
   run in ``--run-dir`` (outside the carried folders, so a second call on the still-warm machine
   finds it): one run longer than a call's time limit, its time summed over the calls.
3. With time left, ``lab/speed/profile_step.py`` on the step that trained.
4. A short table last. Outputs go to ``$OUT`` (else ``benchmarks/gpu-session``).

``--data-skeleton LIST`` is for a machine without the Omniglot PNG tree but with the decoded
28x28 cache (``$METAZOO_CACHE``, built from the real PNGs): the cache key is computed from every
file's name, size and modification time (``metazoo.data.cache.file_stamps``), so the script
recreates each file from LIST, a gzipped ``size mtime_ns name`` line per PNG, as a sparse file of
that size (``os.truncate``, no disk used) with that mtime (``os.utime``). The images themselves
come from the cache. ``--write-skeleton LIST`` writes LIST from ``$METAZOO_DATA`` and exits.

Preparing a lent machine that has neither the data nor ``higher`` (this workplace's device tool
carries an ignored folder of at most 64 MiB), from the repository root here::

    echo /.gpu_extra/ >> .git/info/exclude
    mkdir -p .gpu_extra/site .gpu_extra/cache
    cp -r "$(python -c 'import higher, os; print(os.path.dirname(higher.__file__))')" .gpu_extra/site/
    cp -r "$METAZOO_CACHE/omniglot" .gpu_extra/cache/          # after any Omniglot run here
    python lab/gpu/gpu_session.py --write-skeleton .gpu_extra/omniglot-files.txt.gz

and there (carrying ``.gpu_extra``)::

    PYTHONPATH=$PWD/.gpu_extra/site:$PWD METAZOO_CACHE=$PWD/.gpu_extra/cache \
        python3 lab/gpu/gpu_session.py --data-skeleton .gpu_extra/omniglot-files.txt.gz

then, right after (same machine, same environment), to train on::

    python3 lab/gpu/gpu_session.py --data-skeleton .gpu_extra/omniglot-files.txt.gz \
        --resume --train-minutes 3 --total 280

``--compile-cache .gpu_extra/compile-cache`` keeps TorchInductor's compiled programs in the
carried folder: the first session compiles (about a minute per compiled contender on the H200)
and packs the folder into ``$OUT/compile-cache.tar.gz``; unpacked into ``.gpu_extra`` here, it is
carried to the next session, whose compiles of the same programs (same torch, same GPU kind) are
cache hits. A timed training run then pays less compile time: say so with its result.

The Triton lowering's first GPU run (not yet made). One omniglot-5w1s step launches 24 Triton
kernels: 24 shapes to autotune and, from the layouts the program hands them, 12 to 13 distinct
compilations, each for four tiles: about 50 Triton compiles per precision mode on top of the
Inductor compile, so budget about two minutes to build each Triton contender (the Triton cache,
kept by ``--compile-cache``, serves later processes). The speed run times nothing until every
contender it starts is built, and keeps what it measured if it is killed (``*.json.partial``).
So the first call is the speed check alone, with the fastest step so far (the baseline) built
first: the run's build budget, half its limit (270 s), leaves out the last one if any::

    ... gpu_session.py --data-skeleton .gpu_extra/omniglot-files.txt.gz \
        --compile-cache .gpu_extra/compile-cache --speed-limit 540 --speed-only \
        --contenders torch-loop metazoo-compiled+channels-last+batched-wgrad \
        metazoo-compiled+channels-last+triton-conv \
        metazoo-compiled+channels-last+triton-conv+3xtf32 --total 580

and a second, if device time is left, trains the fastest trainable step it reported
(``--fast-step NAME --train-minutes 4 --total 320``). If the Triton contenders fail their
check, ``python3 -m pytest -q -m gpu tests/unit/experimental/test_implicit_gemm.py`` compares each
kernel with cuDNN.

``--train-tf32`` lets step 2 pick a TF32 step (the training target does not rule TF32 out; its
meta-gradient is about 1% from float64). For the training target alone (15 minutes of device time
hold about 12 of training), skip the speed step: ``--fast-step NAME --train-minutes 8.3 --total
570``, then the ``--resume`` call above with ``--train-minutes 3.2 --total 260``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the lab and metazoo from this checkout, without an install

from lab.script_tools import latest_speed_result, run_logged  # noqa: E402
from lab.speed.contenders import CONTENDERS, CUDA_VARIANTS, train_overrides  # noqa: E402
from metazoo.engine.fast import FAST_STEP_OPTIONS  # noqa: E402  (profile_step's flags)

#: Speed contenders, most important first (the speed run stops starting new ones at its budget).
SPEED_CONTENDERS = (
    "torch-loop",
    "metazoo-compiled+channels-last+triton-conv",
    "metazoo-compiled+channels-last+triton-conv+3xtf32",
    "metazoo-compiled+channels-last+batched-wgrad",
    "metazoo-compiled+channels-last+matmul-conv",
    "metazoo-compiled+channels-last",
    "metazoo-compiled+channels-last+triton-conv+tf32",
    "metazoo-compiled+channels-last+batched-wgrad+tf32",
    "metazoo-compiled+channels-last+tf32",
    "metazoo-auto",
    "metazoo-auto+tf32",
    "metazoo-auto+bf16",
    "maml-learner",
    "higher",
    "metazoo-auto+channels-last",
    "metazoo-compiled",
)
#: Fast-step contenders the trainer can run, and the ``metazoo train`` options that do.
TRAIN_OPTIONS = {
    name: options
    for name in (*CONTENDERS, *CUDA_VARIANTS)
    if (options := train_overrides(name)) is not None
}


def write_skeleton(data_root: Path, listing: Path) -> int:
    """Write ``listing`` (gzipped ``size mtime_ns name`` lines, sorted by name) for every Omniglot
    PNG under ``data_root/omniglot-py``; the number of files."""
    pngs = sorted((data_root / "omniglot-py").rglob("*.png"))
    if not pngs:
        raise FileNotFoundError(
            f"no Omniglot PNGs under {data_root / 'omniglot-py'}; set METAZOO_DATA to the folder "
            "that holds omniglot-py/"
        )
    lines = []
    for path in pngs:
        stat = path.stat()
        lines.append(f"{stat.st_size} {stat.st_mtime_ns} {path.relative_to(data_root)}\n")
    with gzip.open(listing, "wt") as sink:
        sink.writelines(lines)
    return len(lines)


def make_skeleton(listing: Path, root: Path) -> None:
    """Recreate under ``root`` the files ``listing`` names, sparse, with their sizes and mtimes
    (what the decoded-Omniglot cache key reads), and point ``$METAZOO_DATA`` at ``root``."""
    with gzip.open(listing, "rt") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").split(" ", 2)
            if len(fields) != 3:
                raise ValueError(
                    f"{listing}:{number}: expected 'size mtime_ns name', got {line!r}; write the "
                    "list with `python lab/gpu/gpu_session.py --write-skeleton LIST`"
                )
            size, mtime_ns, name = int(fields[0]), int(fields[1]), fields[2]
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb"):
                pass
            os.truncate(path, size)
            os.utime(path, ns=(mtime_ns, mtime_ns))
    os.environ["METAZOO_DATA"] = str(root)


#: A TF32 step may train (``--train-tf32``) when its meta-gradient is this close to float64.
TF32_TRAINING_TOLERANCE = 0.05


def _usable(row: dict, tf32: bool) -> bool:
    if row.get("precision", "fp32") == "fp32":
        return bool(row.get("gradient_ok"))
    error = row.get("meta_grad_rel_error")
    close = error is not None and error <= TF32_TRAINING_TOLERANCE
    return tf32 and row["precision"] == "tf32" and close


def _best_fast_step(document: dict, tf32: bool = False) -> tuple[str, list[str]]:
    """The fastest fast-step contender whose meta-gradient passed the float64 check (fp32), or
    with ``tf32`` also a TF32 one within :data:`TF32_TRAINING_TOLERANCE` of float64."""
    rows = {r["name"]: r for shape in document["shapes"] for r in shape["contenders"]}
    rates = {
        name: (rows[name].get("train") or {}).get("per_s") or 0.0
        for name in TRAIN_OPTIONS
        if name in rows and _usable(rows[name], tf32)
    }
    best = max(rates, key=rates.get) if rates else "metazoo-auto"
    return best, TRAIN_OPTIONS[best]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="rehearse on the CPU, tiny")
    parser.add_argument("--speed-limit", type=float, default=240.0, help="seconds for step 1")
    parser.add_argument("--train-minutes", type=float, default=3.0, help="training time, step 2")
    parser.add_argument("--data-skeleton", help="gzipped PNG list to recreate (see the docstring)")
    parser.add_argument(
        "--write-skeleton", metavar="LIST", help="write that list from $METAZOO_DATA and exit"
    )
    parser.add_argument(
        "--contenders", nargs="+", default=SPEED_CONTENDERS, help="speed contenders, step 1"
    )
    parser.add_argument(
        "--fast-step", choices=sorted(TRAIN_OPTIONS), help="skip step 1; train with this step"
    )
    parser.add_argument(
        "--train-tf32",
        action="store_true",
        help="let step 2 pick a TF32 step too (the training target allows TF32)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip step 1 and go on training the run in --run-dir (a second call on a warm machine)",
    )
    parser.add_argument("--steps", type=int, help="training steps (default 60000; dry run 3)")
    parser.add_argument(
        "--speed-only", action="store_true", help="step 1 and its table only: no training"
    )
    parser.add_argument(
        "--compile-cache",
        help="TorchInductor's cache folder for every step (reused when it holds this torch's and "
        "GPU's compiled programs); packed into $OUT/compile-cache.tar.gz at the end",
    )
    parser.add_argument("--total", type=float, default=550.0, help="hard limit for all (seconds)")
    parser.add_argument(
        "--run-dir", default="/tmp/metazoo-run", help="the training run's folder (checkpoints)"
    )
    return parser.parse_args(argv)


def _speed(args: argparse.Namespace, out: Path, device: str) -> dict:
    """Step 1: the speed check and timing; the result document (empty when skipped)."""
    if args.resume or args.fast_step:
        return {"shapes": []}
    speed = [sys.executable, "-m", "lab.speed", "--device", device]
    speed += ["--shapes", "omniglot-5w1s", "--out", str(out / "speed")]
    if args.dry_run:
        speed += ["--quick", "--tasks", "2", "--threads", "1"]
        speed += ["--contenders", "torch-loop", "metazoo-auto", "maml-learner"]
    else:
        speed += ["--contenders", *args.contenders, "--repeats", "3", "--min-run", "0.3"]
        speed += ["--budget", f"{0.5 * args.speed_limit:.0f}"]
    run_logged(speed, args.speed_limit, out / "speed.log")
    return latest_speed_result(out / "speed") or {"shapes": []}


def _fast_step(args: argparse.Namespace, document: dict) -> str:
    """The fast step to train with: given, the resumed run's, or the fastest checked one."""
    chosen = Path(args.run_dir) / "fast_step.txt"
    if args.resume:
        return args.fast_step or chosen.read_text().strip()
    best = args.fast_step or _best_fast_step(document, args.train_tf32)[0]
    chosen.parent.mkdir(parents=True, exist_ok=True)
    chosen.write_text(best)
    return best


def _train(args: argparse.Namespace, out: Path, device: str, best: str, left: float) -> None:
    """Step 2: ``metazoo train`` (or its resumption) for ``--train-minutes``."""
    steps = f"steps={args.steps or (3 if args.dry_run else 60000)}"
    train = [sys.executable, "-m", "metazoo", "train", "maml", "omniglot-5w1s", "fast_step=true"]
    train += [*TRAIN_OPTIONS[best], steps] + ([] if args.dry_run else ["sample_on_device=true"])
    train += [f"max_minutes={args.train_minutes}", "val_every=2000", "val_episodes=100"]
    train += ["--resume"] if args.resume else []
    train += ["--device", device, "--out", args.run_dir, "--quiet"]
    train += ["--episodes", "20"] if args.dry_run else []
    name = "train-resumed.log" if args.resume else "train.log"
    run_logged(train, max(60.0, min(args.train_minutes * 60 + 240, left)), out / name)


def _report_speed(document: dict) -> int:
    """The speed check's short table (1 when the check produced no result)."""
    if not document["shapes"]:
        print("\nthe speed check produced no result; see speed.log")
        return 1
    from lab.speed.report import short_table

    print(f"\n## Speed, omniglot-5w1s ({document['environment']['device']})\n")
    print(short_table(document))
    return 0


def _report(document: dict, result_path: Path, out: Path, best: str) -> int:
    """Step 4: the short tables, last."""
    if document["shapes"]:
        _report_speed(document)
    if not result_path.is_file():
        print("\ntraining produced no result; see train.log")
        return 1
    result = json.loads(result_path.read_text())
    (out / "train-result.json").write_text(json.dumps({**result, "fast_step": best}, indent=1))
    trained, tested = result["train"], result["result"]
    seconds = trained.get("total_seconds") or trained["seconds"]
    print(f"\n## MAML, Omniglot 5-way 1-shot, fast step {best!r}")
    print(
        f"trained {trained['final_step']} steps in {seconds:.0f} s, resumed calls included "
        f"({trained['final_step'] * 32 / seconds:.0f} tasks/s incl. validation); "
        f"stopped: {trained['stopped']}; best val {trained['best_val']:.2f} at step "
        f"{trained['best_step']}; test {tested['mean']:.2f} ± {tested['ci95']:.2f} "
        f"({len(tested['scores'])} episodes)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    began = time.perf_counter()
    out = Path(os.environ.get("OUT") or REPO / "benchmarks" / "gpu-session")
    out.mkdir(parents=True, exist_ok=True)
    if args.write_skeleton:
        from metazoo.data.paths import data_root

        count = write_skeleton(data_root(), Path(args.write_skeleton))
        print(f"wrote {args.write_skeleton}: {count} files")
        return 0
    if args.data_skeleton:
        make_skeleton(Path(args.data_skeleton), Path("/tmp/metazoo-data"))
    device = "cpu" if args.dry_run else "cuda"
    if args.compile_cache:  # the child processes compile into (and reuse) this folder
        cache = Path(args.compile_cache).resolve()
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
        os.environ["TRITON_CACHE_DIR"] = str(cache / "triton-kernels")  # metazoo's own, tuned
    document = _speed(args, out, device)
    if not args.speed_only:
        best = _fast_step(args, document)
        _train(args, out, device, best, args.total - (time.perf_counter() - began))
        left = args.total - (time.perf_counter() - began)
        if not args.dry_run and left > 90:  # 3. where the step's time goes (compile cached)
            _profile(best, left - 20, out)
    if args.compile_cache:
        _pack(Path(args.compile_cache), out / "compile-cache.tar.gz")
    if args.speed_only:
        return _report_speed(document)
    return _report(document, Path(args.run_dir) / "result.json", out, best)


def _profile(best: str, limit: float, out: Path) -> None:
    """Step 3: ``lab/speed/profile_step.py`` on the step that trained."""
    switches = [o.split("=")[0] for o in TRAIN_OPTIONS[best] if o.endswith("=true")]
    flags = ["--" + o.replace("_", "-") for o in switches if o in FAST_STEP_OPTIONS]
    run_logged([sys.executable, "lab/speed/profile_step.py", *flags], limit, out / "profile.log")


def _pack(folder: Path, archive: Path, limit_mb: float = 36.0) -> None:
    """``folder`` as a gzipped tar, skipped (and said) over ``limit_mb``: the carried folder,
    with the decoded Omniglot cache, must stay under the device tool's 64 MiB."""
    import tarfile

    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    size = archive.stat().st_size / 2**20
    if size > limit_mb:
        archive.unlink()
        print(f"compile cache {size:.0f} MB packed is over {limit_mb:.0f} MB: not kept")
    else:
        print(f"compile cache packed: {archive} ({size:.1f} MB)")


if __name__ == "__main__":
    raise SystemExit(main())
