"""MetaOptNet's differentiable convex base learners: ridge regression and the multi-class SVM.

Both are solved in the dual, whose size is the number of support samples ``n`` (not the feature
width), and both return class weights ``(N, D)`` differentiable with respect to the support
features.

The SVM is Crammer and Singer's multi-class SVM (Lee et al. 2019, eq. 8). With the Gram matrix
``K (n, n)`` and one-hot labels ``Y (n, N)``, the dual is

    min_A  1/2 sum_k A[:, k]^T K A[:, k] - sum_{n,k} Y[n, k] A[n, k]
    s.t.   A[n, k] <= C Y[n, k],   sum_k A[n, k] = 0,

and the class weights are ``W = A^T X``. Each row's constraint set is a translated simplex
(``C Y[n] - A[n]`` lies on the simplex of radius C), so projected accelerated gradient (FISTA)
solves it without a QP library. The solution is then differentiated implicitly: the active
constraints fix some entries at their bound; the rest and the equality multipliers solve a square
linear system (the KKT conditions restricted to the active set), which is re-solved with
differentiable ops. This gives the exact derivative of the solution wherever the active set is
locally constant (Amos and Kolter's OptNet argument, which Lee et al. use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ridge_weights", "svm_dual", "svm_weights", "project_rows_to_simplex"]

#: Relative tolerance of the FISTA iterates and of the KKT checks.
_TOL = 1e-9


def ridge_weights(support: Tensor, labels: Tensor, ways: int, lam: float) -> Tensor:
    """Ridge regression onto one-hot targets, solved in the dual.

    Args:
        support: ``(n, D)`` support features.
        labels: ``(n,)`` labels in ``0..ways-1``.
        ways: N.
        lam: the ridge penalty (Lee et al.'s code: 50).

    Returns:
        ``(N, D)`` weights ``X^T (X X^T + lam I)^-1 Y`` as rows, one per class.
    """
    targets = F.one_hot(labels, ways).to(support.dtype)
    gram = support @ support.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    dual = torch.linalg.solve(gram + lam * eye, targets)  # (n, N)
    return dual.T @ support


def svm_weights(support: Tensor, labels: Tensor, ways: int, c: float, jitter: float) -> Tensor:
    """Crammer-Singer SVM class weights ``(N, D)`` from ``support (n, D)`` and ``labels (n,)``.

    ``jitter * mean(diag K)`` is added to the Gram matrix's diagonal so that the implicit
    derivative's linear system stays regular when ``n`` exceeds the feature width.
    """
    gram = support @ support.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    gram = gram + jitter * gram.diagonal().mean() * eye
    return svm_dual(gram, labels, ways, c).T @ support


def svm_dual(gram: Tensor, labels: Tensor, ways: int, c: float, max_iter: int = 5000) -> Tensor:
    """The dual solution ``A (n, N)`` of the Crammer-Singer SVM, differentiable in ``gram``.

    Args:
        gram: ``(n, n)`` positive definite Gram matrix of the support features.
        labels: ``(n,)`` labels in ``0..ways-1``.
        ways: N.
        c: the SVM's C (Lee et al.: 0.1).
        max_iter: FISTA iterations at most.

    Returns:
        ``(n, N)`` dual variables; ``A^T X`` are the class weights.
    """
    targets = F.one_hot(labels, ways).to(gram.dtype)
    with torch.no_grad():
        solution = _fista(gram.detach().double(), targets.double(), c, max_iter)
        at_bound = (c * targets.double() - solution) <= 1e-6 * c
    exact = _kkt_solution(gram, targets, at_bound, c)
    if bool(((exact.detach() - c * targets) > 1e-6 * c).any()):
        # FISTA stopped before the active set settled: keep its (feasible) value and take the
        # derivative of the KKT system it suggested
        return solution.to(exact) + (exact - exact.detach())
    return exact


def project_rows_to_simplex(v: Tensor, radius: float) -> Tensor:
    """Euclidean projection of each row of ``v (n, N)`` onto ``{z >= 0, sum(z) = radius}``."""
    ordered, _ = v.sort(dim=-1, descending=True)
    excess = ordered.cumsum(-1) - radius
    index = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    count = (ordered - excess / index > 0).sum(-1, keepdim=True)
    threshold = excess.gather(-1, count - 1) / count
    return (v - threshold).clamp_min(0)


def _project(dual: Tensor, targets: Tensor, c: float) -> Tensor:
    bound = c * targets
    return bound - project_rows_to_simplex(bound - dual, c)


def _fista(gram: Tensor, targets: Tensor, c: float, max_iter: int) -> Tensor:
    """Projected accelerated gradient on the dual; ``float64`` in and out, no graph."""
    step = 1.0 / float(torch.linalg.eigvalsh(gram)[-1])
    dual = torch.zeros_like(targets)
    momentum, previous = dual, dual
    t = 1.0
    for _ in range(max_iter):
        dual = _project(momentum - step * (gram @ momentum - targets), targets, c)
        change = float((dual - previous).norm())
        if change <= _TOL * (1.0 + float(dual.norm())):
            break
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        momentum = dual + ((t - 1.0) / t_next) * (dual - previous)
        previous, t = dual, t_next
    return dual


def _kkt_solution(gram: Tensor, targets: Tensor, at_bound: Tensor, c: float) -> Tensor:
    """Solve the KKT conditions with the entries ``at_bound (n, N)`` fixed at ``C Y``.

    Unknowns: ``A`` flattened row-major, then one multiplier per row for ``sum_k A[n, k] = 0``.
    Free entries: ``(K A)[n, k] + nu[n] = Y[n, k]``; entries at the bound: ``A[n, k] = C Y[n, k]``.
    """
    n, ways = targets.shape
    eye_ways = torch.eye(ways, dtype=gram.dtype, device=gram.device)
    row_sums = torch.kron(
        torch.eye(n, dtype=gram.dtype, device=gram.device),
        torch.ones(ways, 1, dtype=gram.dtype, device=gram.device),
    )  # (n*N, n)
    stationarity = torch.cat([torch.kron(gram, eye_ways), row_sums], dim=1)
    pinned = torch.cat([torch.eye(n * ways, dtype=gram.dtype), torch.zeros(n * ways, n)], dim=1)
    bound = at_bound.flatten()[:, None]
    top = torch.where(bound, pinned.to(gram), stationarity)
    bottom = torch.cat([row_sums.T, torch.zeros(n, n, dtype=gram.dtype, device=gram.device)], 1)
    rhs = torch.cat([torch.where(bound[:, 0], c * targets.flatten(), targets.flatten()),
                     targets.new_zeros(n)])  # fmt: skip
    solution = torch.linalg.solve(torch.cat([top, bottom]), rhs)
    return solution[: n * ways].reshape(n, ways)
