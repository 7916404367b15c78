"""Fixed-point training of the inner latent (Attractor Models, seed 003; DEQ, Bai et al. 2019).

With `recursion.solver: fixed_point`, each pass solves z_L* = f(z_L* + z_H + x) instead of
running n updates: plain iteration (z <- f(z)) or Anderson acceleration (memory 5), until the
relative residual ||f(z) - z|| / ||f(z)|| is below `fp_tol` or `fp_max_iter` iterations.
The solve runs without a graph; gradients come from one of (`recursion.fp_grad`):
- one_step: one f call at the fixed point with a graph (the Jacobian-free / "phantom" gradient);
- ift: the implicit-function-theorem gradient: the backward pass solves g = J^T g + dL/dz* by
  fixed-point iteration of vector-Jacobian products (same tolerance and cap).
Both record the iterations used and the final residual (StepOutput.solver_stats).
"""

from __future__ import annotations

from typing import Callable

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]


def _relative_residual(f_z: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-row ||f(z) - z|| / ||f(z)||, shape (rows,)."""
    diff = (f_z - z).flatten(1).float().norm(dim=1)
    return diff / f_z.flatten(1).float().norm(dim=1).clamp_min(1e-8)


def plain_iteration(fn: Fn, z: torch.Tensor, tol: float, max_iter: int) -> tuple[torch.Tensor, int, float]:
    """z <- f(z) until every row's relative residual < tol (or max_iter). Returns (z, iters, residual)."""
    res = torch.full((z.shape[0],), float("inf"), device=z.device)
    iters = 0
    for iters in range(1, max_iter + 1):
        f_z = fn(z)
        res = _relative_residual(f_z, z)
        z = f_z
        if float(res.max()) < tol:
            break
    return z, iters, float(res.max())


def anderson(fn: Fn, z0: torch.Tensor, tol: float, max_iter: int, memory: int = 5, lam: float = 1e-4,
             beta: float = 1.0) -> tuple[torch.Tensor, int, float]:
    """Anderson acceleration (type II), batched over rows: each row mixes its last `memory` iterates
    with the weights that minimise the norm of the combined residual. Returns (z, iters, residual)."""
    rows, shape = z0.shape[0], z0.shape
    flat = lambda t: t.reshape(rows, -1).float()
    n = flat(z0).shape[1]
    xs = torch.zeros(rows, memory, n, device=z0.device)
    fs = torch.zeros(rows, memory, n, device=z0.device)
    xs[:, 0], fs[:, 0] = flat(z0), flat(fn(z0))
    xs[:, 1], fs[:, 1] = fs[:, 0], flat(fn(fs[:, 0].view(shape).to(z0.dtype)))
    h = torch.zeros(rows, memory + 1, memory + 1, device=z0.device)
    h[:, 0, 1:] = h[:, 1:, 0] = 1
    y = torch.zeros(rows, memory + 1, 1, device=z0.device)
    y[:, 0] = 1
    iters, res = 2, torch.full((rows,), float("inf"), device=z0.device)
    for k in range(2, max_iter):
        m = min(k, memory)
        g = fs[:, :m] - xs[:, :m]
        gram = g @ g.transpose(1, 2)
        # Tikhonov term relative to the residuals' scale, so it does not swamp them near convergence
        reg = lam * gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)
        h[:, 1:m + 1, 1:m + 1] = gram + reg[:, None, None] * torch.eye(m, device=z0.device)[None]
        alpha = torch.linalg.solve(h[:, :m + 1, :m + 1], y[:, :m + 1])[:, 1:m + 1, 0]  # (rows, m)
        xs[:, k % memory] = beta * (alpha[:, None] @ fs[:, :m])[:, 0] + (1 - beta) * (alpha[:, None] @ xs[:, :m])[:, 0]
        fs[:, k % memory] = flat(fn(xs[:, k % memory].view(shape).to(z0.dtype)))
        iters = k + 1
        res = (fs[:, k % memory] - xs[:, k % memory]).norm(dim=1) / fs[:, k % memory].norm(dim=1).clamp_min(1e-8)
        if float(res.max()) < tol:
            break
    return fs[:, (iters - 1) % memory].view(shape).to(z0.dtype), iters, float(res.max())


SOLVERS = {"plain": plain_iteration, "anderson": anderson}


def solve_with_grad(fn: Fn, z0: torch.Tensor, method: str, grad: str, tol: float, max_iter: int
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """z* of fn (no graph through the solve) and a gradient path as `grad` says (module docstring)."""
    with torch.no_grad():
        z_star, iters, residual = SOLVERS[method](fn, z0, tol, max_iter)
    stats = {"fp_iters": float(iters), "fp_residual": residual}
    if not torch.is_grad_enabled():
        return z_star, stats
    if grad == "one_step":
        return fn(z_star), stats
    # implicit gradient: z = f(z*) carries the graph to the parameters and the injection; its
    # incoming gradient is replaced by the solution of g = J^T g + grad (J = df/dz at z*)
    z_in = z_star.detach().requires_grad_(True)
    f_star = fn(z_in)
    z_out = fn(z_star.detach())

    def adjoint(grad_out: torch.Tensor) -> torch.Tensor:
        g = grad_out
        for _ in range(max_iter):
            g_next = torch.autograd.grad(f_star, z_in, g, retain_graph=True)[0] + grad_out
            done = float(_relative_residual(g_next, g).max()) < tol
            g = g_next
            if done:
                break
        return g

    if z_out.requires_grad:
        z_out.register_hook(adjoint)
    return z_out, stats
