"""Smoke reproduction of MAML and first-order MAML on Omniglot 5-way 1-shot, on the CPU, beside
the fine-tuning baseline trained on the same episodes.

Short runs (300 meta-iterations of 8 tasks each; see ``lab/reproductions/configs/{maml,fomaml}-
omniglot-5w1s-cpu.yaml`` for every deviation from the paper's 60k iterations of 32 tasks),
evaluated with 3 inner steps on 600 fixed test episodes (mean ± 95% CI). They show that both
learners learn on the real data with the paper's inner loop; the paper's 98.7% / 98.3% need the
full-length run on a GPU. Writes ``benchmarks/results/reproduction-omniglot-5w1s-smoke-<env>.json``.

Run: ``METAZOO_DATA=/path/to/data python lab/reproductions/omniglot_smoke.py``
(about 10 minutes on 2 shared CPU cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import metazoo  # noqa: E402
from lab.reproductions.common import load_config, run, write  # noqa: E402


def main() -> None:
    runs = {}
    for name in (
        "maml-omniglot-5w1s-cpu",
        "fomaml-omniglot-5w1s-cpu",
        "finetune-omniglot-5w1s-cpu",
    ):
        print(f"running {name}", flush=True)
        record = run(load_config(name))
        card = metazoo.learner_card(record["config"]["learner"]).get("results", {})
        record["paper"] = card.get("omniglot-5w1s")
        runs[record["config"]["learner"]] = record
    write(
        "reproduction-omniglot-5w1s-smoke",
        {
            "reproduction": "omniglot-5w1s smoke (CPU budget)",
            "metric": "accuracy",
            "note": "short CPU runs, not comparable with the paper's full-length numbers "
            "(kept under paper for reference); see each config's deviations",
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
