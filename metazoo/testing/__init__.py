"""Test support in one place, importable by plugin authors and by metazoo's own tests.

* :mod:`metazoo.testing.contract`: :func:`check_learner`, the contract suite ``tests/contract/``
  runs over every registered learner (failures are :class:`ContractError`), and the small
  synthetic meta-batches it uses; :mod:`metazoo.testing.capabilities`, its checks of the optional
  capabilities a learner declares (:mod:`metazoo.learner`);
* :mod:`metazoo.testing.gradcheck`: meta-gradients against float64 central finite differences,
  with tiny nets (BatchNorm included) and batches to run them on;
* :mod:`metazoo.testing.synthetic`: a data-free benchmark (:class:`SyntheticBenchmark`), a tiny
  learner (:class:`TinyLearner`) and :func:`registered`, for harness, trainer and suite tests.

Nothing in the library imports this package; it sits above the learners, the harness and the
trainer.
"""

from metazoo.testing.contract import (
    IMAGE_SHAPE,
    QUERIES,
    SHOTS,
    TASKS,
    WAYS,
    ContractError,
    check_learner,
    default_model,
    synthetic_batch,
)
from metazoo.testing.gradcheck import (
    GradCheckReport,
    check_meta_gradient,
    meta_gradient,
    tiny_batch,
    tiny_conv_net,
    tiny_learner,
    tiny_mlp,
)
from metazoo.testing.synthetic import SyntheticBenchmark, SyntheticSampler, TinyLearner, registered

__all__ = [
    "IMAGE_SHAPE",
    "QUERIES",
    "SHOTS",
    "TASKS",
    "WAYS",
    "ContractError",
    "check_learner",
    "default_model",
    "synthetic_batch",
    "GradCheckReport",
    "check_meta_gradient",
    "meta_gradient",
    "tiny_batch",
    "tiny_conv_net",
    "tiny_learner",
    "tiny_mlp",
    "SyntheticBenchmark",
    "SyntheticSampler",
    "TinyLearner",
    "registered",
]
