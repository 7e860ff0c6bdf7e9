"""Several :class:`QuantumLayer` s of one shape evaluated as one stacked circuit call.

``stacked_forward(layers, inputs)`` returns what ``torch.stack([layer(x) for layer, x in
zip(layers, inputs)])`` returns, but runs the fast path once for all layers: their weights,
input and output scalings are stacked along a leading dim at call time, so each layer keeps its
own parameters (gradients, optimizer state, checkpoints and parameter averaging are untouched)
while the number of torch ops no longer grows with the number of layers. Without autograd the
layers' cached weights-only operators are stacked instead (sampling on env runners).

Layers stack when they take the fast path with the dense strategy and have equal
:class:`CircuitSpec` s, dtypes and devices; anything else runs layer by layer, with the same
result (:func:`stack_reason` says why a set does not stack).

Example:
    >>> import torch
    >>> from rllib_quantum.circuits import QuantumLayer
    >>> layers = [QuantumLayer({"n_qubits": 3, "n_layers": 2}) for _ in range(4)]
    >>> x = torch.rand(4, 8, 3)                       # 8 rows for each of the 4 layers
    >>> out = stacked_forward(layers, x)
    >>> out.shape
    torch.Size([4, 8, 3])
    >>> torch.allclose(out[2], layers[2](x[2]), atol=1e-6)
    True
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from rllib_quantum.circuits.layer import QuantumLayer
from rllib_quantum.circuits.statevector import CompiledWeights, real_dtype_for


def stack_reason(layers: Sequence[QuantumLayer], batch: int = 1) -> Optional[str]:
    """Why ``layers`` cannot run as one stacked call for ``batch`` rows each, or ``None`` if they can."""
    if not layers:
        return "no layers"
    first = layers[0]
    for layer in layers:
        if layer.execution_path != "fast":
            return f"a layer runs on PennyLane ({layer.spec.device}), not the fast path"
        if layer.spec != first.spec:
            return "the layers' circuit specs differ"
        if layer._forward_pre_hooks or layer._forward_hooks_with_kwargs:
            return "a layer has forward pre-hooks or keyword hooks"
        if (layer.output_scale is None) != (first.output_scale is None):
            return "some layers have an output scaling, others not"
        for name in ("weights", "input_scale"):
            mine, theirs = getattr(layer, name), getattr(first, name)
            if mine.dtype != theirs.dtype or mine.device != theirs.device:
                return f"the layers' {name} differ in dtype or device"
            if mine.requires_grad != theirs.requires_grad:
                return f"some layers train their {name}, others not"
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for layer in layers for t in (layer.weights, layer.input_scale)
    )
    if not first._fast.prefers_dense(batch, grad):
        return f"{first.spec.n_qubits} qubits use the factored strategy, which does not stack"
    return None


def _stacked_operators(parts: Sequence[CompiledWeights], owner: QuantumLayer) -> torch.Tensor:
    """``torch.stack`` of the layers' cached operators, itself cached on ``owner`` while every layer
    returns the very same cached operators (their weights unchanged): sampling then copies no
    ``(M, L, 2**n, 2**n)`` stack per call. The cache holds the parts it was built from, so their
    identities cannot be reused by new objects while it lives."""
    cached = owner.__dict__.get("_stacked_operators_cache")
    if cached is not None and len(cached[0]) == len(parts) and all(a is b for a, b in zip(cached[0], parts)):
        return cached[1]
    stacked = torch.stack([part.layers for part in parts])
    owner.__dict__["_stacked_operators_cache"] = (tuple(parts), stacked)
    return stacked


def run_stacked(first: QuantumLayer, inputs: torch.Tensor, scales: torch.Tensor, output_scales: Optional[torch.Tensor],
                weights: Optional[torch.Tensor] = None, operators: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The dense fast path of ``M`` layers shaped like ``first`` on ``(M, B, n_qubits)`` inputs, from
    their parameters already stacked: ``scales`` ``(M, n_qubits)``, ``output_scales`` ``(M, 1,
    n_readouts)`` or ``None``, and either ``weights`` (stacked, differentiable) or ``operators`` (the
    stacked weights-only operators of :meth:`QuantumLayer._cached_weights`, without autograd). No
    checks and no hooks: :func:`stacked_forward` runs them."""
    compiled = None if operators is None else CompiledWeights(True, operators)
    out = first._fast(inputs, first.weights if weights is None else weights, scales, compiled=compiled, dense=True).to(inputs.dtype)
    return out if output_scales is None else (out * output_scales).to(inputs.dtype)


def stacked_forward(layers: Sequence[QuantumLayer], inputs: torch.Tensor) -> torch.Tensor:
    """``(M, B, n_qubits)`` inputs, row block ``m`` for ``layers[m]`` -> ``(M, B, n_readouts)``.

    Equal to ``torch.stack([layers[m](inputs[m]) for m in range(M)])`` (within float32 rounding);
    one circuit evaluation when :func:`stack_reason` allows it, else layer by layer. The layers'
    forward hooks run with their own slices, as if each layer had been called.

    Args:
        layers: ``M`` layers.
        inputs: ``(M, B, n_qubits)``; pad with any finite values where a layer has fewer rows.
    """
    if inputs.dim() != 3 or inputs.shape[0] != len(layers):
        raise ValueError(f"inputs must have shape ({len(layers)}, batch, n_qubits), got {tuple(inputs.shape)}")
    if stack_reason(layers, inputs.shape[1]) is not None:
        return torch.stack([layer(x) for layer, x in zip(layers, inputs)])
    first = layers[0]
    n = first.spec.n_qubits
    if inputs.shape[-1] != n:
        raise ValueError(f"QuantumLayer expects inputs with last dimension n_qubits={n}, got shape {tuple(inputs.shape)}")
    scales = torch.stack([layer.input_scale for layer in layers])
    output_scales = None if first.output_scale is None else torch.stack([layer.output_scale for layer in layers]).unsqueeze(1)
    if torch.is_grad_enabled() and first.weights.requires_grad:
        out = run_stacked(first, inputs, scales, output_scales, weights=torch.stack([layer.weights for layer in layers]))
    else:  # sampling: each layer's cached operators (recompiled only when its weights changed)
        rdtype = real_dtype_for(inputs, first.weights, first.input_scale)
        out = run_stacked(first, inputs, scales, output_scales,
                          operators=_stacked_operators([layer._cached_weights(rdtype, True) for layer in layers], first))
    for m, layer in enumerate(layers):
        for hook in layer._forward_hooks.values():
            hook(layer, (inputs[m],), out[m])
    return out
