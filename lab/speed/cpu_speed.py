"""The committed CPU speed table: every shape in its own speed-lab process, then merged.

    python lab/speed/cpu_speed.py            # about 20 minutes on 2 cores; writes benchmarks/
    python lab/speed/cpu_speed.py --out DIR  # elsewhere

One process per shape keeps one shape's memory high-water mark out of the next one's figures. At
``omniglot-20w1s`` the engine's unchunked ``vmap`` executor is left out: all 16 tasks' graphs at
once need more than this machine's 24 GB (the kernel killed it). Then
``python -m lab.docs.generate`` regenerates ``docs/speed.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the lab and metazoo from this checkout, without an install

from lab.script_tools import latest_speed_result, run_logged  # noqa: E402
from lab.speed.report import merge_documents, short_table, write_result  # noqa: E402

#: (shape, contenders or None for all): the vectorized executor does not fit 24 GB at 20-way.
CPU_PLAN = (
    ("omniglot-5w1s", None),
    (
        "omniglot-20w1s",
        [
            "higher",
            "learn2learn",
            "torch-loop",
            "metazoo-auto",
            "metazoo-sequential",
            "maml-learner",
        ],
    ),
    ("miniimagenet-5w1s", None),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks"), help="folder for the result")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--work", default="/tmp/metazoo-cpu-speed", help="per-shape results (default %(default)s)"
    )
    parser.add_argument(
        "--merge-only",
        action="store_true",
        help="run nothing: merge the per-shape results already in --work (after rerunning a "
        "shape that a busy machine disturbed)",
    )
    args = parser.parse_args(argv)
    documents = []
    for shape, contenders in CPU_PLAN:
        work = Path(args.work) / shape
        command = [
            sys.executable,
            "-m",
            "lab.speed",
            "--shapes",
            shape,
            "--out",
            str(work),
        ]
        command += ["--threads", str(args.threads)]
        command += ["--contenders", *contenders] if contenders else []
        if not args.merge_only:  # a shape takes minutes on 2 cores; an hour means it hung
            run_logged(command, 3600, work / "speed.log")
        found = latest_speed_result(work)
        documents += [found] if found else []
    if not documents:
        print("no shape produced a result", file=sys.stderr)
        return 1
    merged = merge_documents(documents)
    json_path, md_path = write_result(merged, args.out)
    print(f"\nwrote {json_path} and {md_path}\n\n{short_table(merged)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
