"""Every learner declares its test-time settings; the harness records what it declares."""

from __future__ import annotations

import dataclasses

import pytest

from metazoo import create_learner, list_learners
from metazoo.build import fields_it_takes, learner_tasks
from metazoo.evaluation.harness import _BN_FIELDS, _INNER_STEP_FIELDS, _first_field, config_dict
from metazoo.learner import eval_settings
from metazoo.testing import IMAGE_SHAPE, WAYS, default_model


def _build(name: str, task: str, **config):
    shape = IMAGE_SHAPE if task == "classification" else (1,)
    filled = fields_it_takes(name, {"ways": WAYS, "input_shape": shape, "task": task})
    return create_learner(name, default_model(name, task), **{**filled, **config})


def _variants(name: str) -> list[dict]:
    """The defaults, and each settable field the old guess read set to another value."""
    fields = {f.name for f in dataclasses.fields(_build(name, learner_tasks(name)[0]).config)}
    other = {"test_inner_steps": 7, "inner_steps": 3, "bn_policy": "running"}
    return [{}] + [{k: v} for k, v in other.items() if k in fields]


@pytest.mark.parametrize("name", list_learners())
def test_declared_settings_equal_what_the_harness_guessed_from_field_names(name):
    for task in learner_tasks(name):
        for config in _variants(name):
            learner = _build(name, task, **config)
            fields = config_dict(learner)
            guessed = (_first_field(fields, _INNER_STEP_FIELDS), _first_field(fields, _BN_FIELDS))
            declared = eval_settings(learner)
            assert (declared.inner_steps, declared.bn_policy) == guessed, (task, config)
