"""The MAML variants' meta-gradients agree between the sequential and vectorized executors."""

from __future__ import annotations

import pytest

from metazoo.engine.gradcheck import meta_gradient, tiny_learner

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("name", ["anil", "metasgd", "mamlpp"])
@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_vectorized_equals_sequential(name, kind):
    seq, batch = tiny_learner(name, kind, 3, executor="sequential")
    vec, _ = tiny_learner(name, kind, 3, executor="vectorized", chunk_size=2)
    a, b = meta_gradient(seq, batch), meta_gradient(vec, batch)
    assert float((a - b).norm() / a.norm()) < 1e-8
