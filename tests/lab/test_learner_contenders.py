"""``python -m lab.speed --learners``: registered learners raced as the trainer and harness run them."""

from __future__ import annotations

import pytest
import torch

from lab.speed.learners import learner_contenders
from lab.speed.report import render_markdown
from lab.speed.runner import SpeedConfig, run_speed
from lab.speed.shapes import get_shapes, make_model, synthetic_batches

SHAPE = get_shapes(["omniglot-5w1s"])[0].scaled(2)


@pytest.fixture(scope="module")
def run():
    config = SpeedConfig(
        shapes=[SHAPE],
        contenders=["torch-loop", "learner:protonet", "learner:reptile", "learner:finetune"],
        extra_contenders=learner_contenders(["protonet", "reptile", "finetune"]),
        warmup=2,
        repeats=1,
        min_run_s=0.0,
    )
    return run_speed(config, log=lambda line: None)


def test_learners_are_timed_and_checked_against_their_own_float64_objective(run):
    records = {r["name"]: r for r in run["shapes"][0]["contenders"]}
    # Reptile's paper inner loop is Adam: it divides by sqrt(v) + 1e-8, so float32 rounding of the
    # near-zero gradients of conv biases before BatchNorm becomes whole steps of either sign
    for name, bound in (("learner:protonet", 1e-3), ("learner:reptile", 5e-2)):
        record = records[name]
        assert record["status"] == "ok" and record["reference"] == "own float64"
        assert record["meta_grad_rel_error"] < bound
        assert record["train"]["per_s"] > 0 and record["eval"]["per_s"] > 0
    assert records["learner:finetune"]["status"] == "skipped"
    assert "dataset-wide class ids" in records["learner:finetune"]["note"]
    assert "learner:protonet" in render_markdown(run)


def test_the_gradient_check_leaves_the_learner_as_it_was():
    """Reptile's check runs a whole outer step (weights, counters): all of it is undone."""
    build = learner_contenders(["reptile"])["learner:reptile"]
    model = make_model(SHAPE)
    batch = synthetic_batches(SHAPE, 1)[0]
    contender = build(model, SHAPE, batch)
    before = {k: v.clone() for k, v in contender.model.state_dict().items()}
    first = contender.meta_gradient(batch)
    second = contender.meta_gradient(batch)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert all(torch.equal(v, contender.model.state_dict()[k]) for k, v in before.items())
    assert torch.cat([g.flatten() for g in first]).norm() > 0


def test_unknown_learners_are_named():
    with pytest.raises(KeyError, match=r"unknown learner\(s\) \['nope'\]"):
        learner_contenders(["nope"])
