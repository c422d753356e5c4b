"""An example metazoo plugin: the R2-D2 learner (ridge regression on learned embeddings)."""

from metazoo_r2d2.learner import R2D2

__all__ = ["R2D2"]
