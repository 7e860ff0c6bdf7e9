"""Natural-gradient steps for a quantum actor: the Fisher matrix and the step.

A circuit's angles, per-layer input scalings, output scalings and read-out head are a poor
coordinate system for the policy they define: Adam moves each by about its learning rate, whatever
that does to the policy. A natural-gradient step moves them in the direction that lowers the loss
most per unit of KL divergence between the old and the new policy::

    d = (F + lambda I)^-1 g,     step = -eta d,     0.5 eta^2 g^T d = kl

with ``g`` the loss gradient over the actor's parameters and ``F`` the policy's Fisher matrix over
them, ``F = mean_s J_s^T M_s J_s``: ``J_s`` the Jacobian of the action distribution's inputs
(logits, or Gaussian means) at state ``s``, ``M_s`` the distribution's own Fisher metric (categorical:
``diag(p) - p p^T``, per component for ``MultiDiscrete``; Gaussian means: ``diag(exp(-2 log_std))``),
exact over actions. ``lambda`` is ``damping`` times the mean of ``F``'s diagonal.

With ``model_config["natural_gradient"]`` set (see :class:`~rllib_quantum.modules.model_config.NaturalGradientConfig`),
:class:`~rllib_quantum.learners.QuantumPPOTorchLearner` estimates ``F`` once per update from
``fisher_rows`` states of its first minibatch and takes such a step for :func:`actor_parameters`
on every minibatch, with ``kl`` following the lr schedule's shape (``kl * (lr_t / lr_0)**2``).
Everything else (encoder, critic, Gaussian log-std) stays on Adam: ``F`` treats the encoder's
output as given (a block of the full Fisher matrix, as K-FAC takes one block per layer).

Each state's Jacobian is exact and cheap: the circuit runs once for all rows with a per-row copy of
its dense layer matrices (and of the scalings and head), one backward per distribution input gives
every row's gradient of those copies, and the matrices' Jacobian w.r.t. the angles (computed once,
forward mode) chains them to the angles.

Example:
    >>> import gymnasium as gym, numpy as np, torch
    >>> from rllib_quantum.modules import QuantumPPORLModule
    >>> module = QuantumPPORLModule(
    ...     observation_space=gym.spaces.Box(-1, 1, (3,), np.float32), action_space=gym.spaces.Discrete(2),
    ...     model_config={"circuit": {"n_qubits": 3, "n_layers": 1}, "natural_gradient": {"kl": 0.001}},
    ... )
    >>> [name for name, _, _ in actor_parameters(module)]
    ['actor.weights', 'actor.input_scale', 'actor.output_scale']
    >>> f = fisher(module, torch.rand(64, 3) * 2 - 1)
    >>> f.shape, bool(torch.allclose(f, f.T)), bool(torch.linalg.eigvalsh(f).min() > -1e-12)
    (torch.Size([14, 14]), True, True)
    >>> g = (f @ torch.randn(14, dtype=torch.float64)).float()   # a policy gradient lies in F's range
    >>> step = natural_step(f, g, kl=0.001, damping=0.001)
    >>> round(float(0.5 * step.double() @ f @ step.double()), 4)   # the step's KL, up to the damping
    0.001
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from rllib_quantum.circuits.statevector import real_dtype_for


def actor_parameters(module) -> List[Tuple[str, nn.Parameter, str]]:
    """``(name, parameter, lr group)`` of what natural-gradient steps move, in the order of
    :func:`fisher`'s rows: the actor circuit's weights, input scalings and output scalings, then the
    linear read-out head's weight and bias; each only if trainable and its ``lr_multipliers`` group
    is not 0."""
    layer, multipliers = module.actor, module.lr_multipliers
    candidates = [
        ("actor.weights", layer.weights, "circuit"),
        ("actor.input_scale", layer.input_scale, "input_scale"),
        ("actor.output_scale", layer.output_scale, "output_scale"),
    ]
    if isinstance(module.actor_head, nn.Linear):
        candidates += [(f"actor_head.{n}", p, "classical") for n, p in module.actor_head.named_parameters()]
    return [
        (name, p, group)
        for name, p, group in candidates
        if isinstance(p, nn.Parameter) and p.requires_grad and multipliers[group] != 0
    ]


def _per_row(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` independent copies of ``tensor`` as one leaf ``(rows, ...)``: its gradient is per row."""
    return tensor.detach().unsqueeze(0).expand(rows, *tensor.shape).clone().requires_grad_()


def action_jacobian(module, embeddings: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The action distribution's inputs before masking (logits, or Gaussian means) ``(R, K)`` at the
    circuit inputs ``embeddings`` ``(R, n_qubits)``, and their Jacobian ``(R, K, D)`` w.r.t.
    :func:`actor_parameters` (flattened in that order), exact per row."""
    layer, head = module.actor, module.actor_head
    circuit = layer.statevector
    if circuit is None:
        raise ValueError("natural-gradient steps need the actor circuit on the fast path (execution 'fast' or 'auto')")
    stepped = [p for _, p, _ in actor_parameters(module)]
    moves = {id(p) for p in stepped}
    rows = embeddings.shape[0]
    rdtype = real_dtype_for(embeddings, layer.weights, layer.input_scale)
    leaves: Dict[int, torch.Tensor] = {}

    def value(p: torch.Tensor) -> torch.Tensor:  # a per-row leaf for stepped parameters, else the value
        if id(p) in moves:
            leaves[id(p)] = _per_row(p, rows)
            return leaves[id(p)]
        return p.detach()

    weights = layer.weights.detach().to(rdtype)
    with torch.no_grad():
        layers = circuit.compile(weights, rdtype, dense=True).layers  # (L', 2**n, 2**n)
    with torch.enable_grad():
        if id(layer.weights) in moves:  # the angles' per-row stand-in: the layer matrices, per row
            layers = leaves[id(layer.weights)] = _per_row(layers, rows)
        out = circuit.run_dense(embeddings.detach().to(rdtype).unsqueeze(1), layers, value(layer.input_scale))[:, 0]
        out = out.to(embeddings.dtype)
        if layer.output_scale is not None:
            out = out * value(layer.output_scale)
        if isinstance(head, nn.Linear):
            out = torch.einsum("rkj,rj->rk", value(head.weight), out) + value(head.bias)
        wanted = [leaves[id(p)] for p in stepped]
        weight_jacobian = None
        if id(layer.weights) in moves:  # d(matrices)/d(angles), real view: (L' * 4**n * 2, n_weights)
            weight_jacobian = torch.autograd.functional.jacobian(
                lambda w: torch.view_as_real(circuit.compile(w, rdtype, dense=True).layers),
                weights, vectorize=True, strategy="forward-mode",
            ).reshape(-1, weights.numel())
        columns = []
        for k in range(out.shape[1]):
            grads = torch.autograd.grad(out[:, k].sum(), wanted, retain_graph=k < out.shape[1] - 1, allow_unused=True)
            parts = []
            for p, g in zip(stepped, grads):
                if g is None:  # a parameter this output does not depend on
                    parts.append(torch.zeros(rows, p.numel(), dtype=torch.float64, device=out.device))
                elif p is layer.weights:
                    parts.append(torch.view_as_real(g).reshape(rows, -1).double() @ weight_jacobian.double())
                else:
                    parts.append(g.reshape(rows, -1).double())
            columns.append(torch.cat(parts, dim=1))
    return out.detach(), torch.stack(columns, dim=1)


def distribution_metric(module, outputs: torch.Tensor, batch: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """The action distribution's Fisher metric w.r.t. its inputs, ``(R, K, K)`` float64: categorical
    ``diag(p) - p p^T`` (masked actions have ``p = 0``), block-diagonal per ``MultiDiscrete``
    component, ``diag(exp(-2 log_std))`` for Gaussian means. ``batch`` (the rows' observations)
    is only read for an action mask."""
    head = module.quantum_config.action_head
    if head.kind == "diag_gaussian":
        precision = torch.exp(-2.0 * module.log_std.detach().double())
        return torch.diag_embed(precision.expand(outputs.shape[0], -1))
    if batch is not None and module.mask_keys is not None:
        outputs = module.masked(outputs, batch)
    metric = torch.zeros(outputs.shape[0], outputs.shape[1], outputs.shape[1], dtype=torch.float64, device=outputs.device)
    start = 0
    for size in head.sizes:
        p = torch.softmax(outputs[:, start:start + size].double(), dim=-1)
        metric[:, start:start + size, start:start + size] = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
        start += size
    return metric


def fisher(module, embeddings: torch.Tensor, batch: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """The policy's Fisher matrix over :func:`actor_parameters`, ``(D, D)`` float64, averaged over
    the rows of ``embeddings`` (the circuit's inputs at sampled states; ``batch``: those rows'
    observations, read only for an action mask)."""
    outputs, jacobian = action_jacobian(module, embeddings)
    metric = distribution_metric(module, outputs, batch)
    return torch.einsum("rkd,rkl,rle->de", jacobian, metric, jacobian) / embeddings.shape[0]


def natural_step(f: torch.Tensor, grad: torch.Tensor, kl: float, damping: float) -> torch.Tensor:
    """``-eta (F + lambda I)^-1 g`` with ``lambda = damping * mean(diag F)`` and ``eta`` such that
    ``0.5 eta^2 g^T (F + lambda I)^-1 g = kl``; a zero step where that product is not positive (no
    gradient). The step has ``grad``'s dtype."""
    g = grad.detach().double()
    lam = damping * torch.diagonal(f).mean().clamp_min(torch.finfo(torch.float64).tiny)
    direction = torch.linalg.solve(f + lam * torch.eye(f.shape[0], dtype=f.dtype, device=f.device), g)
    g_d = float(g @ direction)
    if not g_d > 0:
        return torch.zeros_like(grad)
    return (-(2.0 * kl / g_d) ** 0.5 * direction).to(grad.dtype)
