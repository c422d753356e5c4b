"""Shared driver of the reproduction scripts: a flat YAML config -> train -> evaluate -> a record.

A config (``lab/reproductions/configs/<learner>-<benchmark>*.yaml``) holds::

    name: maml-sinusoid
    learner: maml
    benchmark: sinusoid
    threads: 1                    # torch intra-op threads (1 is fastest on shared small CPUs)
    build: {seed: 0}              # metazoo.build_learner options (seed, backbone, backbone_options)
    config: {inner_lr: 0.01}      # learner config
    train: {steps: 10000, ...}    # metazoo.training.TrainConfig fields
    sampler: {queries: 5}         # training-sampler overrides (optional)
    eval: {episodes: 600, seed: 0, test_inner_steps: [1, 5, 10], select_inner_lr: [...]}
    paper: {"1": 0.67}            # the paper's number per test_inner_steps (from the card's source)

Numbers in the records come from metazoo's own training and evaluation; nothing is typed in.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

import metazoo
from metazoo import engine
from metazoo.evaluation.provenance import (
    check_one_version,
    code_version,
    environment,
    environment_tag,
)
from metazoo.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "configs"
RESULTS = REPO / "benchmarks" / "results"


def load_config(name: str) -> dict[str, Any]:
    """The config ``lab/reproductions/configs/<name>.yaml``."""
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def _condensed_history(history: list[dict[str, Any]], points: int = 50) -> list[dict[str, Any]]:
    train_rows = [h for h in history if h.get("kind") == "train"]
    stride = max(1, len(train_rows) // points)
    return train_rows[::stride] + [h for h in history if h.get("kind") != "train"]


def _evaluate_at(
    learner, cfg: dict[str, Any], steps: int, inner_lr: float | None, split: str, episodes: int
):
    learner.config.test_inner_steps = steps
    if inner_lr is not None:
        learner.config.inner_lr = inner_lr
    return metazoo.evaluate(
        learner, cfg["benchmark"], episodes=episodes, seed=cfg["eval"].get("seed", 0), split=split
    )


def _select_inner_lr(learner, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Pick the test-time step size on the validation split (the paper tuned the baseline's)."""
    grid = cfg["eval"].get("select_inner_lr")
    if not grid:
        return None
    steps = max(cfg["eval"]["test_inner_steps"])
    episodes = cfg["eval"].get("val_episodes", 200)
    scores = {}
    for lr in grid:
        try:
            scores[lr] = _evaluate_at(learner, cfg, steps, lr, "val", episodes).mean
        except engine.InnerLoopDivergence:  # a step size that diverges is not a candidate
            scores[lr] = math.inf
    best = (
        min(scores, key=scores.get)
        if cfg["eval"].get("lower_is_better", True)
        else max(scores, key=scores.get)
    )
    return {
        "grid": grid,
        "val_episodes": episodes,
        "val_steps": steps,
        "val_scores": scores,
        "chosen": best,
    }


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one config; returns a JSON-safe record with everything.

    A finished record is kept under ``$METAZOO_CACHE/reproductions/``, keyed by the config and the
    code version, so a script that fails later does not train it again; uncommitted code is never
    cached (its record could not be traced to a commit).
    """
    cache = Path(os.environ.get("METAZOO_CACHE", Path.home() / ".cache" / "metazoo"))
    version = code_version()
    key = hashlib.sha256(json.dumps([cfg, version], sort_keys=True).encode()).hexdigest()[:16]
    cached = cache / "reproductions" / f"{cfg['name']}-{key}.json"
    if cached.is_file() and not version.endswith("-dirty"):
        print(f"  {cfg['name']}: reusing {cached}", flush=True)
        return json.loads(cached.read_text())
    record = _clean(_run(cfg))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(record, allow_nan=False))
    return record


def _run(cfg: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(int(cfg.get("threads", 1)))
    learner = metazoo.build_learner(
        cfg["learner"], cfg["benchmark"], **cfg.get("build", {}), **cfg.get("config", {})
    )
    train_cfg = TrainConfig(**cfg.get("train", {}))
    start = time.perf_counter()
    result = train(learner, cfg["benchmark"], train_cfg, **cfg.get("sampler", {}))
    train_seconds = time.perf_counter() - start
    selection = _select_inner_lr(learner, cfg)
    evaluations = {}
    for steps in cfg["eval"].get("test_inner_steps", [None]):
        chosen = selection["chosen"] if selection else None
        if steps is None:
            res = metazoo.evaluate(
                learner,
                cfg["benchmark"],
                episodes=cfg["eval"]["episodes"],
                seed=cfg["eval"].get("seed", 0),
            )
        else:
            res = _evaluate_at(learner, cfg, steps, chosen, "test", cfg["eval"]["episodes"])
        evaluations[str(steps)] = res.to_dict()
        print(f"  {cfg['name']}: {res}  (test_inner_steps={steps})", flush=True)
    return {
        "name": cfg["name"],
        "config_file": f"lab/reproductions/configs/{cfg['name']}.yaml",
        "config": cfg,
        "learner_config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(learner.config).items()
        },
        "train": {
            "steps": result.final_step,
            "seconds": round(train_seconds, 1),
            "seconds_per_step": round(train_seconds / max(result.final_step, 1), 4),
            "best_val": result.best_val,
            "best_step": result.best_step,
            "history": _condensed_history(result.history),
        },
        "inner_lr_selection": selection,
        "evaluations": evaluations,
        "precision": engine.precision_mode(),
    }


def compare_with_paper(record: dict[str, Any]) -> dict[str, Any]:
    """Measured vs the paper per test step count: relative gap and whether it is within 20%."""
    out = {}
    for steps, paper in (record["config"].get("paper") or {}).items():
        measured = record["evaluations"][str(steps)]
        gap = (measured["mean"] - paper) / paper
        out[str(steps)] = {
            "paper": paper,
            "measured": measured["mean"],
            "ci95": measured["ci95"],
            "relative_gap": round(gap, 4),
            "within_20_percent": abs(gap) <= 0.20,
        }
    return out


def record_versions(name: str, env: dict[str, Any], runs: dict[str, Any]) -> dict[str, Any]:
    """Every provenance record of one reproduction file, by where it sits (for
    :func:`~metazoo.evaluation.check_one_version`): the script's and each evaluation's."""
    return {
        name: env,
        **{
            f"{name}: {learner} after {steps} steps": evaluation["provenance"]
            for learner, run in runs.items()
            for steps, evaluation in run["evaluations"].items()
        },
    }


def write(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>-<environment tag>.json`` with the environment recorded
    (the machine measured, not typed); refuses runs of uncommitted or of several code versions."""
    env = environment()
    check_one_version(record_versions("this script", env, payload["runs"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{environment_tag()}.json"
    payload = {"environment": env, **payload}
    path.write_text(json.dumps(_clean(payload), indent=1, allow_nan=False) + "\n")
    return path


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples lists, other objects their str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
