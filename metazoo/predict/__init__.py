"""A trained learner on your own data: load it back from its run, adapt it on a folder of labelled
images, classify new images.

* :func:`load_learner` / :func:`load_run`: the learner of a run folder or checkpoint (plugins
  included; a missing plugin is named by the distribution the checkpoint records);
* :func:`predict_folders`: class probabilities for query images after adapting on
  ``support/<class>/<images>``, read as the benchmark's images (:func:`image_format`);
* :func:`class_probabilities`: the same on tensors.

``metazoo predict RUN --support DIR --query DIR|FILE...`` is the command line of it.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.predict.images import ImageFormat, image_format, read_queries, read_support
from metazoo.predict.load import LearnerNotInstalledError, find_checkpoint, load_learner, load_run
from metazoo.predict.run import (
    Predictions,
    check_class_count,
    class_probabilities,
    predict_folders,
)

__all__ = [
    "ImageFormat",
    "LearnerNotInstalledError",
    "Predictions",
    "check_class_count",
    "class_probabilities",
    "find_checkpoint",
    "image_format",
    "load_learner",
    "load_run",
    "predict_folders",
    "read_queries",
    "read_support",
]
