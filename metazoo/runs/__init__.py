"""A run: its settings resolved once (:func:`resolve_run`), then built, trained and tested
(:func:`train_and_test`), leaving one kind of record, for ``metazoo train``, Python and suites.

From Python, the learner and the :class:`~metazoo.training.TrainConfig` a table row used::

    run = metazoo.resolve_run("reptile", "omniglot-5w1s", overrides={"steps": 200})
    learner = run.build_learner()
    config = run.train_config(checkpoint_dir="runs/reptile")
    metazoo.train(learner, run.benchmark, config,
                  train_overrides=run.section("train_sampler"), **run.section("sampler"))

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.runs.execute import RESULT_SCHEMA, new_record, train_and_test
from metazoo.runs.resolve import ResolvedRun, resolve_run
from metazoo.runs.settings import SAMPLER_KEYS, SECTIONS, load_run_block

__all__ = [
    "ResolvedRun",
    "resolve_run",
    "train_and_test",
    "new_record",
    "RESULT_SCHEMA",
    "SAMPLER_KEYS",
    "SECTIONS",
    "load_run_block",
]
