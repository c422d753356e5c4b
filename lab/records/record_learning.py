"""Run the learning protocols and write ``benchmarks/results/learning-<learner>-<machine>.json``.

Usage: ``python lab/records/record_learning.py [--machine cpu] [learner ...]`` from the
repository root (``METAZOO_DATA`` must point at the data). One file per learner; CNP's file holds
both its Omniglot and its sinusoid run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the protocol of tests/learning and metazoo from this checkout

from metazoo.evaluation.provenance import code_version  # noqa: E402
from tests.learning.protocol import PROTOCOLS, run_protocol  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("learners", nargs="*", help="learners to run (default: all)")
    parser.add_argument("--machine", default="cpu", help="machine label in the file name")
    args = parser.parse_args(argv)
    version = code_version()
    if version.endswith("-dirty"):  # a result file belongs to one commit
        raise SystemExit(
            f"uncommitted changes ({version}): commit, then record from the clean tree"
        )
    names = args.learners or sorted({p.learner for p in PROTOCOLS.values()})
    unknown = sorted(set(names) - {p.learner for p in PROTOCOLS.values()})
    if unknown:
        raise SystemExit(f"no learning protocol for {unknown}; known: {sorted(PROTOCOLS)}")
    records = {}
    for name in names:  # every run first: a file written into the checkout would make it dirty
        runs = [run_protocol(p) for p in PROTOCOLS.values() if p.learner == name]
        records[name] = {
            "learner": name,
            "machine": args.machine,
            "cpu": platform.processor(),
            "runs": runs,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, record in records.items():
        path = RESULTS / f"learning-{name}-{args.machine}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        for run in record["runs"]:
            result = run["result"]
            print(
                f"{name} on {result['benchmark']}: {result['metric']} {result['mean']:.3f} "
                f"± {result['ci95']:.3f} ({run['protocol']['steps']} steps, "
                f"{run['train_cpu_seconds']} CPU s) -> {path}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
