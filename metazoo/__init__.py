"""metazoo: a pluggable zoo of meta-learning algorithms for PyTorch.

Public API re-exports only; names resolve lazily so ``import metazoo`` stays fast. These names,
``metazoo.engine``'s and ``metazoo.testing``'s are the public API; every other module is internal
(``tests/unit/test_public_api.py`` holds the list, so a new public name is a deliberate change).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Episode": "metazoo.episode",
    "EpisodeBatch": "metazoo.episode",
    "MetaLearner": "metazoo.learner",
    "TaskState": "metazoo.learner",
    "GradientLearner": "metazoo.learner",
    "OuterStepLearner": "metazoo.learner",
    "EpisodeScorer": "metazoo.learner",
    "EvalSettingsLearner": "metazoo.learner",
    "EvalSettings": "metazoo.learner",
    "register_learner": "metazoo._registry",
    "create_learner": "metazoo._registry",
    "list_learners": "metazoo._registry",
    "get_learner": "metazoo._registry",
    "plugin_errors": "metazoo._registry",
    "build_learner": "metazoo.build",
    "resolve_run": "metazoo.runs",
    "learner_card": "metazoo.cards",
    "benchmark_card": "metazoo.cards",
    "make_sampler": "metazoo.data",
    "list_benchmarks": "metazoo.data",
    "from_tensors": "metazoo.data",
    "image_folder": "metazoo.data",
    "episode_loader": "metazoo.data",
    "accuracy": "metazoo.metrics",
    "evaluate": "metazoo.evaluation",
    "compare": "metazoo.evaluation",
    "EvalResult": "metazoo.evaluation",
    "train": "metazoo.training",
    "TrainConfig": "metazoo.training",
    "FastOptions": "metazoo.engine.fast",
    "load_learner": "metazoo.predict",
    "predict_folders": "metazoo.predict",
    "adapt_weights": "metazoo.engine.adapt_api",
    "FastModel": "metazoo.engine.adapt_api",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'metazoo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
