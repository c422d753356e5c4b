"""check_learner catches broken learners with messages that say what to fix, also under -O."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo.learner import EvalSettings
from metazoo.learners.episodic import class_means
from metazoo.testing import ContractError, check_learner, registered


class Undeclared(nn.Module):
    """Class means of embeddings and negative squared distances, a forward pass that does not
    declare itself one (the example plugin's old mistake)."""

    model_kind = "embedding"
    tasks = ("classification",)
    percent = 100.0

    @dataclass
    class Config:
        """No settings."""

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        self.model = model
        self.config = config

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        return class_means(self.model(support_x), support_y, ways)

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        return -(torch.cdist(self.model(query_x), state) ** 2)

    def meta_loss(self, batch, step=None) -> tuple[Tensor, dict[str, float]]:
        losses, scores = [], []
        for task in batch:
            logits = self.predict(
                self.adapt(task.support_x, task.support_y, task.ways), task.query_x
            )
            losses.append(F.cross_entropy(logits, task.query_y))
            scores.append((logits.argmax(-1) == task.query_y).double().mean().item())
        return torch.stack(losses).mean(), {"accuracy": self.percent * sum(scores) / len(scores)}


class Prototypes(Undeclared):
    """The same learner, correct: it declares its adaptation a forward pass."""

    adapts_by_gradient = False


class GradInsideAdapt(Prototypes):
    """Declares a forward pass, yet switches autograd on itself."""

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        with torch.enable_grad():
            return super().adapt(support_x, support_y, ways)


class Fraction(Prototypes):
    """Reports accuracy as a fraction (0-1), as finetune's pre-training once did."""

    percent = 1.0


class StillOuterStep(Prototypes):
    """Claims its own outer step, which updates nothing."""

    def outer_step(self, batch, optimizer, step) -> dict[str, float]:
        return {"loss": 0.0}


class ZeroScores(Prototypes):
    """Scores blocks of episodes with numbers adapt and predict do not give."""

    def score_episodes(self, batch) -> Tensor:
        return torch.zeros(len(batch))


class UnknownPolicy(Prototypes):
    """Declares a BatchNorm policy the engine does not have."""

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(inner_steps=None, bn_policy="batch")


class TwoArgumentAdapt(Prototypes):
    """Written for the old contract: adapt derives the ways from the labels."""

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Tensor:  # type: ignore[override]
        return super().adapt(support_x, support_y, int(support_y.max()) + 1)


def _check(cls: type) -> None:
    with registered(cls, family="metric") as name:
        check_learner(name)


def test_a_correct_learner_passes():
    _check(Prototypes)


def test_undeclared_forward_adaptation_is_caught():
    with pytest.raises(ContractError) as info:
        _check(Undeclared)
    message = str(info.value)
    assert (
        "in eval mode, adapt() under the harness's torch.enable_grad() returned a state" in message
    )
    assert "set the class attribute adapts_by_gradient = False" in message


def test_grad_switched_on_inside_a_forward_adapt_is_caught():
    with pytest.raises(ContractError, match=r"declares adapts_by_gradient = False, yet adapt\(\)"):
        _check(GradInsideAdapt)


def test_meta_loss_metric_must_match_the_harness_score_episode_by_episode():
    with pytest.raises(ContractError) as info:
        _check(Fraction)
    message = str(info.value)
    assert "in eval mode, meta_loss reported accuracy" in message
    assert "on episode 0, but predict(adapt(...)) scores" in message
    reported = float(message.split("reported accuracy ")[1].split(" ")[0])
    scored = float(message.split("scores ")[1].split(" ")[0])
    assert scored == pytest.approx(100.0 * reported)


def test_an_adapt_without_ways_is_told_the_new_signature():
    with pytest.raises(ContractError, match=r"adapt must take \(support_x, support_y, ways\)"):
        _check(TwoArgumentAdapt)


def test_an_outer_step_that_moves_nothing_is_caught():
    with pytest.raises(ContractError, match="outer_step did not change any parameter"):
        _check(StillOuterStep)


def test_block_scores_must_be_the_harness_scores():
    with pytest.raises(ContractError) as info:
        _check(ZeroScores)
    message = str(info.value)
    assert "score_episodes gave [0.0, 0.0], but adapt then predict score the episodes" in message


def test_declared_eval_settings_must_be_well_formed():
    with pytest.raises(ContractError, match=r"eval_settings\(\) must return .* got EvalSettings"):
        _check(UnknownPolicy)


def test_the_contract_checks_use_no_assert_statement():
    """The fast sibling of the ``python -O`` test below: ``-O`` strips ``assert`` statements, so
    the checks raise ContractError explicitly."""
    import ast

    import metazoo.testing.contract as contract

    tree = ast.parse(Path(contract.__file__).read_text())
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert asserts == [], f"assert statements vanish under python -O: lines {asserts}"
    assert any(  # and the module does raise ContractError itself
        isinstance(node, ast.Raise) and "ContractError" in ast.unparse(node)
        for node in ast.walk(tree)
    )


@pytest.mark.slow  # a fresh interpreter under -O
def test_failures_survive_python_dash_o():
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, {here!r})
        from test_check_learner import Fraction, _check
        from metazoo.testing import ContractError
        assert False, "asserts are stripped under -O"
        """
    ).format(here=str(Path(__file__).parent))
    code += textwrap.dedent(
        """
        try:
            _check(Fraction)
        except ContractError as error:
            print("caught:", error)
        """
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "caught:" in out.stdout and "meta_loss reported accuracy" in out.stdout
