"""Result records as ``metazoo bench`` writes them, built from given scores for the table, study
and README tests (no training)."""

from __future__ import annotations

from metazoo.evaluation import EvalResult
from metazoo.evaluation.stats import mean_ci95


def record(
    learner,
    benchmark,
    seed,
    scores,
    metric="accuracy",
    eval_seed=0,
    status="ok",
    error="",
    steps=50,
    train_seconds=None,
) -> dict:
    """One cell's result file of the ``unit`` suite with these per-episode ``scores``."""
    mean, ci95, std = mean_ci95(scores)
    protocol = {"episodes": len(scores), "ways": 5 if metric == "accuracy" else None, "shots": 1,
                "queries": 15, "inner_steps": 3 if "maml" in learner else None,
                "bn_policy": "transductive" if "maml" in learner else None, "dtype": "float32", "tf32": False,
                "sampler": {"benchmark": benchmark, "seed": eval_seed, "queries": 15}, "episodes_digest": f"{benchmark}-{eval_seed}"}  # fmt: skip
    result = EvalResult(learner, benchmark, "test", eval_seed, metric, scores, list(range(len(scores))),
                        mean, ci95, std, 10.0, 1.0, 0.0, protocol, {})  # fmt: skip
    data = {"schema": 1, "suite": "unit", "cell": f"{learner}__{benchmark}__seed{seed}",
            "learner": learner, "benchmark": benchmark, "seed": seed, "status": status,
            "environment": {"device_name": "cpu", "torch": "2.x", "metazoo": "0.1.0", "git": None},
            "finished": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    if status == "ok":
        data["result"] = result.to_dict()
        data["train"] = {"config": {"steps": steps, "meta_batch": 4}, "history": []}
        if train_seconds is not None:
            data["train"]["total_seconds"] = train_seconds
    else:
        data["error"] = error
    return data


def study_record(variant: str, scores: list[float]) -> dict:
    """One MAML cell of a ``study`` suite, as ``variant``, with these per-episode ``scores``."""
    mean, ci95, std = mean_ci95(scores)
    result = EvalResult("maml", "omniglot-5w1s", "test", 0, "accuracy", scores,
                        list(range(len(scores))), mean, ci95, std, 1.0, 1.0, 0.0,
                        {"sampler": {"queries": 15}, "episodes_digest": "d"}, {})  # fmt: skip
    return {"schema": 1, "suite": "study", "cell": f"maml+{variant}__omniglot-5w1s__seed0",
            "learner": "maml", "variant": variant, "benchmark": "omniglot-5w1s", "seed": 0,
            "status": "ok", "environment": {}, "finished": "2026-01-01T00:00:00+00:00",
            "result": result.to_dict(), "train": {"config": {}, "history": []}}  # fmt: skip
