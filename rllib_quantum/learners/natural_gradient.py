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

Each state's Jacobian is exact and cheap (:func:`action_jacobian`): one float64 forward pass of the
dense statevector for all rows, one adjoint pass for all distribution inputs at once, and each layer
matrix's derivative w.r.t. its own angles (computed once per update, forward mode) applied to that
layer's input states. (The first version, autograd through per-row copies of the layer matrices,
added about twice as much learner time per update: ``benchmarks/README.md``, "PPO iteration time".)

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

from rllib_quantum.circuits.statevector import _unit_phases, dense_layer_states


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


def _layer_derivatives(circuit, weights: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per dense layer matrix ``l`` (transposed, as :meth:`StatevectorCircuit.compile` gives them):
    the flat indices ``j`` of the angles it depends on and ``dU_l / d angle_j`` for those, ``(J_l,
    2**n, 2**n)`` complex128, exact (forward mode). A re-uploading layer depends on its own angles
    only, so each layer's block is a fraction of the full Jacobian."""
    w = weights.detach().double()
    jac = torch.autograd.functional.jacobian(
        lambda v: torch.view_as_real(circuit.compile(v, torch.float64, dense=True).layers),
        w, vectorize=True, strategy="forward-mode",
    )  # (L', 2**n, 2**n, 2, *weight_shape)
    jac = jac.reshape(*jac.shape[:4], -1).movedim(-1, 1)  # (L', n_weights, 2**n, 2**n, 2)
    out = []
    for block in jac:
        used = block.flatten(1).abs().amax(dim=1).nonzero().flatten()
        out.append((used, torch.view_as_complex(block[used].contiguous())))
    return out


def action_jacobian(module, embeddings: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The action distribution's inputs before masking (logits, or Gaussian means) ``(R, K)`` at the
    circuit inputs ``embeddings`` ``(R, n_qubits)``, and their Jacobian ``(R, K, D)`` w.r.t.
    :func:`actor_parameters` (flattened in that order), exact per row, in float64. A mirrored
    module (``model_config["mirror"]``) takes ``(2R, n_qubits)``: R rows, then their mirror
    images, as its ``embed`` gives them; outputs and Jacobian are those of its symmetrised logits.

    One forward pass of the statevector and one adjoint pass for all ``K`` outputs at once (the
    dense strategy's math, :class:`~rllib_quantum.circuits.statevector._DenseRun`): with ``a_l``
    a layer's input state and ``g_l`` the adjoint of its output, ``d out / d angle_j = Re(conj(g_l)
    . (a_l @ dU_l/d angle_j))``, ``d out / d phases_l = Im(g_a conj(a_l))`` chained to the input
    scalings, and the output scalings and linear head in closed form."""
    layer, head = module.actor, module.actor_head
    circuit = layer.statevector
    if circuit is None:
        raise ValueError("natural-gradient steps need the actor circuit on the fast path (execution 'fast' or 'auto')")
    stepped = actor_parameters(module)
    moves = {id(p) for _, p, _ in stepped}
    device, f64 = embeddings.device, torch.float64
    consts = circuit._consts(f64, device)
    x = embeddings.detach().to(f64)
    with torch.no_grad():
        matrices = circuit.compile(layer.weights.detach().to(f64), f64, dense=True).layers  # (L', 2**n, 2**n)
        reuploading = circuit.spec.encoding == "reuploading"
        input_scale = layer.input_scale.detach().to(f64)
        diagonals = _unit_phases(circuit._phases(consts, x, input_scale, f64))  # (R, n_enc, 2**n)
        psi, inputs_of_layer = dense_layer_states(diagonals, matrices, consts.start, reuploading)
        signs = consts.readout_pairs[0::2]  # (2**n, n_readouts)
        readouts = (psi.real.square() + psi.imag.square()) @ signs  # (R, n_readouts)
        scaled = readouts if layer.output_scale is None else readouts * layer.output_scale.detach().to(f64)
        if isinstance(head, nn.Linear):
            head_weight = head.weight.detach().to(f64)
            outputs = scaled @ head_weight.T + head.bias.detach().to(f64)
            d_scaled = head_weight  # (K, n_readouts): d outputs / d scaled read-outs
        else:
            outputs = scaled
            d_scaled = torch.eye(scaled.shape[1], dtype=f64, device=device)
        d_readouts = d_scaled if layer.output_scale is None else d_scaled * layer.output_scale.detach().to(f64)
        rows, k_out = outputs.shape
        blocks: Dict[str, torch.Tensor] = {}  # parameter name -> (R, K, numel)
        if id(layer.weights) in moves or id(layer.input_scale) in moves:
            # adjoint of the read-outs for every output k at once: g = 2 psi (d out_k / d readouts) . signs
            g = 2 * psi.unsqueeze(1) * (d_readouts @ signs.T).to(psi.dtype)  # (R, K, 2**n)
            weight_grad = torch.zeros(rows, k_out, layer.weights.numel(), dtype=f64, device=device)
            phase_grads = [None] * diagonals.shape[1]
            derivatives = _layer_derivatives(circuit, layer.weights) if id(layer.weights) in moves else None
            for index in reversed(range(matrices.shape[0])):
                a = inputs_of_layer[index]
                if derivatives is not None:
                    used, d_matrix = derivatives[index]
                    moved = torch.einsum("rb,jbc->rjc", a, d_matrix)  # (R, J_l, 2**n): a_l @ dU_l/d angle_j
                    weight_grad[:, :, used] += torch.einsum("rkc,rjc->rkj", g.conj(), moved).real
                g = g @ matrices[index].mH  # the adjoint of a_l
                if index == 0 or reuploading:
                    phase_grads[index] = (g * a.conj().unsqueeze(1)).imag  # (R, K, 2**n)
                if index > 0 and reuploading:
                    g = g * diagonals[:, index].conj().unsqueeze(1)
            blocks["actor.weights"] = weight_grad
            # phases_e = (x * s_e) @ phase_signs: d out / d s_e,i = x_i * (d out / d phases_e @ phase_signs^T)_i
            phase_grad = torch.stack(phase_grads, dim=2)  # (R, K, n_enc, 2**n)
            blocks["actor.input_scale"] = (
                (phase_grad @ consts.phase_signs.T) * x[:, None, None, :]
            ).reshape(rows, k_out, -1)
        if layer.output_scale is not None:
            blocks["actor.output_scale"] = d_scaled.unsqueeze(0) * readouts.unsqueeze(1)  # (R, K, n_readouts)
        if isinstance(head, nn.Linear):
            eye = torch.eye(k_out, dtype=f64, device=device)
            blocks["actor_head.weight"] = (eye[None, :, :, None] * scaled[:, None, None, :]).reshape(rows, k_out, -1)
            blocks["actor_head.bias"] = eye.expand(rows, k_out, k_out)
        jacobian = torch.cat([blocks[name] for name, _, _ in stepped], dim=2)
        if module.mirror is not None:  # model_config "mirror": rows and their mirror images -> the means
            outputs, jacobian = module.symmetrised(outputs), module.symmetrised(jacobian)  # (R, K, D): K permuted
        if module.inverse_temperature is not None:  # the logits' factor (model_config "inverse_temperature")
            beta = module.inverse_temperature.detach().to(f64)
            outputs, jacobian = outputs * beta, jacobian * beta
    return outputs.to(embeddings.dtype), jacobian


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
    return torch.einsum("rkd,rkl,rle->de", jacobian, metric, jacobian) / outputs.shape[0]


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
