"""MetaOptNet's convex heads: the SVM dual against scipy and its derivative against finite
differences; ridge regression against the primal closed form; the meta-gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metazoo
from metazoo.learners.convex_heads import project_rows_to_simplex, ridge_weights, svm_dual
from metazoo.testing import check_meta_gradient, tiny_batch

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _embedding() -> nn.Module:
    """A conv embedding of tiny_batch's ``(1, 6, 6)`` images: 27 features."""
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3, track_running_stats=False), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
    )  # fmt: skip


def _problem(seed: int, n: int = 6, ways: int = 3, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    return x, torch.arange(ways).repeat(n // ways)


def _scipy_dual(gram: np.ndarray, targets: np.ndarray, c: float) -> np.ndarray:
    """The same QP solved by SLSQP, written out independently of the module."""
    minimize = pytest.importorskip("scipy.optimize").minimize  # in the dev extra
    n, ways = targets.shape

    def objective(a):
        a = a.reshape(n, ways)
        return 0.5 * np.einsum("nk,nm,mk->", a, gram, a) - (targets * a).sum()

    rows = [{"type": "eq", "fun": lambda a, i=i: a.reshape(n, ways)[i].sum()} for i in range(n)]
    bounds = [(None, c * t) for t in targets.flatten()]
    result = minimize(objective, np.zeros(n * ways), method="SLSQP", bounds=bounds,
                      constraints=rows, options={"ftol": 1e-15, "maxiter": 2000})  # fmt: skip
    assert result.success, result.message
    return result.x.reshape(n, ways)


@pytest.mark.parametrize("seed, c", [(0, 0.1), (1, 1.0), (2, 0.05), (3, 10.0)])
def test_svm_dual_matches_an_independent_qp_solver(seed, c):
    x, y = _problem(seed)
    gram = x @ x.T
    ours = svm_dual(gram, y, 3, c).numpy()
    reference = _scipy_dual(gram.numpy(), F.one_hot(y, 3).double().numpy(), c)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert np.abs(ours.sum(1)).max() < 1e-10  # sum_k A[n, k] = 0 exactly


def test_svm_solution_derivative_matches_finite_differences_of_the_solution():
    x, y = _problem(4)
    probe = torch.randn(6, 3, generator=torch.Generator().manual_seed(5))

    def solution(features):
        return (svm_dual(features @ features.T, y, 3, 0.5) * probe).sum()

    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(solution(x), x)
    eps, numeric = 1e-6, torch.zeros_like(x)
    for index in np.ndindex(*x.shape):
        step = torch.zeros_like(x)
        step[index] = eps
        with torch.no_grad():
            numeric[index] = (solution(x + step) - solution(x - step)) / (2 * eps)
    assert float(grad.abs().max()) > 1e-3  # the solution does depend on the features
    torch.testing.assert_close(grad, numeric, atol=1e-6, rtol=1e-5)


def test_simplex_projection_is_the_nearest_point_of_the_simplex():
    v = torch.tensor([[0.5, 0.2, -0.3], [2.0, 2.0, 2.0], [0.1, 0.0, 0.0]])
    z = project_rows_to_simplex(v, 1.0)
    torch.testing.assert_close(z, torch.tensor([[0.65, 0.35, 0.0], [1 / 3, 1 / 3, 1 / 3],
                                                [0.4, 0.3, 0.3]]))  # fmt: skip


def test_ridge_dual_equals_the_primal_closed_form():
    x, y = _problem(6, n=9, dim=4)
    targets = F.one_hot(y, 3).double()
    primal = torch.linalg.solve(x.T @ x + 50.0 * torch.eye(4), x.T @ targets)  # (D, N)
    torch.testing.assert_close(ridge_weights(x, y, 3, 50.0), primal.T)


@pytest.mark.parametrize("head", ["svm", "ridge"])
def test_meta_gradient_matches_finite_differences(head):
    torch.manual_seed(0)
    learner = metazoo.create_learner("metaoptnet", _embedding(), head=head, svm_c=1.0)
    report = check_meta_gradient(learner, tiny_batch("classification"))
    assert report.max_error < 1e-5, report


def test_unknown_head_names_the_choices():
    with pytest.raises(ValueError, match=r"head must be one of \('svm', 'ridge'\), got 'knn'"):
        metazoo.create_learner("metaoptnet", _embedding(), head="knn")
