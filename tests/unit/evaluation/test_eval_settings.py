"""Every learner declares its test-time settings; the harness records what it declares.

The declarations replaced a guess from config field names (``test_inner_steps``, ``inner_steps``,
``test_steps``, ``steps``; ``bn_policy``...); a test checked, for every registered learner and
each such field set, that both gave the same values before the guess was deleted. The table below
is what they gave.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import create_learner, list_learners
from metazoo.build import fields_it_takes, learner_tasks
from metazoo.evaluation import evaluate
from metazoo.learner import EvalSettings, eval_settings
from metazoo.testing import IMAGE_SHAPE, WAYS, SyntheticBenchmark, TinyLearner, default_model

#: Each built-in's declared settings at its registered defaults: (inner steps, BatchNorm policy).
DECLARED = {
    "maml": (1, "transductive"),
    "fomaml": (1, "transductive"),
    "anil": (1, "transductive"),
    "metasgd": (1, "transductive"),
    "mamlpp": (5, "per_step"),
    "reptile": (5, "transductive"),
    "finetune": (10, "transductive"),
    "baselinepp": (10, "transductive"),
    "transductive_ft": (None, "transductive"),  # it counts fine-tuning epochs, in its config
    "protonet": (None, None),
    "matchingnet": (None, None),
    "relationnet": (None, None),
    "metaoptnet": (None, None),
    "cnp": (None, None),
    "mann": (None, None),
    "snail": (None, None),
}
#: Learners whose test-time inner steps are a config field.
TEST_STEPS = ("maml", "fomaml", "anil", "metasgd", "mamlpp", "reptile", "finetune", "baselinepp")


def _build(name: str, task: str, **config):
    shape = IMAGE_SHAPE if task == "classification" else (1,)
    filled = fields_it_takes(name, {"ways": WAYS, "input_shape": shape, "task": task})
    return create_learner(name, default_model(name, task), **{**filled, **config})


def test_every_built_in_learner_is_in_the_table():
    assert set(DECLARED) <= set(list_learners())
    assert set(DECLARED) == {n for n in list_learners() if not n.startswith("test-")} - {"r2d2"}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_learner_declares_its_test_time_settings(name):
    for task in learner_tasks(name):
        settings = eval_settings(_build(name, task))
        assert (settings.inner_steps, settings.bn_policy) == DECLARED[name], task


@pytest.mark.parametrize("name", TEST_STEPS)
def test_the_declared_steps_follow_the_config(name):
    assert eval_settings(_build(name, learner_tasks(name)[0], test_inner_steps=7)).inner_steps == 7


class Declaring(TinyLearner):
    """Declares settings of its own."""

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(inner_steps=4, bn_policy="running")


def test_the_harness_records_the_declared_settings():
    learner = Declaring(nn.Linear(8, 8), TinyLearner.Config())
    torch.manual_seed(0)
    result = evaluate(learner, SyntheticBenchmark(features=8), episodes=2)
    assert (result.protocol["inner_steps"], result.protocol["bn_policy"]) == (4, "running")
