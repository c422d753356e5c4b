"""compare() pairs only results evaluated on the same episodes, and says which option differs."""

from __future__ import annotations

import pytest

import metazoo
from metazoo.evaluation import compare, evaluate

pytestmark = pytest.mark.usefixtures("omniglot_data")


@pytest.fixture(scope="module")
def protonet():
    return metazoo.build_learner("protonet", "omniglot-5w1s", seed=0)


def test_a_class_split_mismatch_is_refused(protonet):
    vinyals = evaluate(protonet, "omniglot-5w1s", episodes=3)
    maml_split = evaluate(protonet, "omniglot-5w1s", episodes=3, class_split="maml")
    with pytest.raises(ValueError) as error:
        compare(vinyals, maml_split)
    message = str(error.value)
    assert "not evaluated on the same episodes" in message
    assert "sampler option dataset: 'omniglot/vinyals/test' vs 'omniglot/maml/test'" in message


def test_a_queries_mismatch_is_refused(protonet):
    fifteen = evaluate(protonet, "omniglot-5w1s", episodes=3)
    five = evaluate(protonet, "omniglot-5w1s", episodes=3, queries=5)
    with pytest.raises(ValueError, match="sampler option queries: 15 vs 5"):
        compare(fifteen, five)


def test_same_options_other_contents_are_refused(protonet):
    a = evaluate(protonet, "omniglot-5w1s", episodes=3)
    b = evaluate(protonet, "omniglot-5w1s", episodes=3)
    assert compare(a, b).mean_diff == 0.0  # same episodes: paired
    b.protocol["episodes_digest"] = "0" * 32  # as if another copy of the dataset had been read
    with pytest.raises(ValueError, match="the episodes' contents"):
        compare(a, b)
