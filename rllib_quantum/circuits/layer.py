"""``QuantumLayer``: a variational circuit as a torch ``nn.Module`` that evaluates whole batches."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, NamedTuple, Optional, Union

import torch
from torch import nn

from rllib_quantum.circuits.spec import CircuitSpec
from rllib_quantum.circuits.statevector import (
    CompiledWeights,
    StatevectorCircuit,
    fast_path_unsupported_reason,
    real_dtype_for,
)
from rllib_quantum.circuits.templates import build_qnode
from rllib_quantum.errors import ConfigError


class _WeightsCache(NamedTuple):
    """Weights-only operators of the fast path, valid while the weights are the ones recorded here."""

    key: tuple  # (weights._version, data_ptr, dtype, device)
    snapshot: torch.Tensor  # the weights' values when cached (catches writes through ``.data``)
    compiled: Dict[tuple, CompiledWeights]  # (real dtype, dense) -> operators


class QuantumLayer(nn.Module):
    """A variational quantum circuit with trainable weights, input and output scaling.

    ``forward(x)`` maps ``(..., n_qubits)`` inputs to ``(..., spec.n_readouts)`` expectation
    values (``<Z_i>``, and ``<Z_i Z_j>`` for ``observables="Z+ZZ"``; times the output scaling),
    in ``x``'s dtype. Two execution paths compute the same numbers (:attr:`execution_path`):

    * ``"fast"``: the exact statevector simulation in torch
      (:mod:`rllib_quantum.circuits.statevector`), differentiated by torch autograd; complex64 for
      float32, complex128 for float64. ``execution="auto"`` picks it for ``default.qubit`` and
      ``lightning.qubit`` with ``shots=None`` (``diff_method`` is then irrelevant: gradients are
      exact either way). When the weights need no gradient (``torch.no_grad()``,
      ``torch.inference_mode()``, or frozen weights) the weights-only part of the circuit is cached
      and reused until the weights change (optimizer steps, ``load_state_dict``, in-place copies,
      writes through ``.data`` are all detected).
    * ``"pennylane"``: a PennyLane QNode on ``spec.device`` with ``spec.diff_method``; a whole batch
      is one circuit evaluation on ``default.qubit`` (parameter broadcasting); devices that do not
      broadcast (``lightning.qubit``) loop inside PennyLane. Used for ``execution="pennylane"``,
      shots and devices the fast path does not reproduce (e.g. ``default.mixed``).

    The QNode is built lazily, on first use, in the process that uses it (Lightning devices cannot
    be pickled); module state holds only plain tensors, so ``state_dict()`` and pickling work.

    Args:
        spec: a :class:`CircuitSpec` or a dict of its fields (validated; unknown keys are named).

    Raises:
        ConfigError: a bad or unknown spec field (``key`` names it: ``"n_qubits"``, or ``""`` for
            unknown fields), or ``execution="fast"`` for a circuit the fast path cannot run
            (``key`` is ``"execution"``; the message says why).

    Example:
        >>> import torch
        >>> layer = QuantumLayer({"n_qubits": 3, "n_layers": 2})
        >>> layer(torch.rand(8, 3)).shape
        torch.Size([8, 3])
        >>> layer(torch.rand(8, 3)).sum().backward()   # gradients reach weights and scalings
        >>> layer.execution_path
        'fast'
        >>> with torch.no_grad():
        ...     y = layer(torch.rand(1, 3))                # weights-only part cached from here on
    """

    def __init__(self, spec: Union[CircuitSpec, Mapping[str, Any]]) -> None:
        super().__init__()
        if not isinstance(spec, CircuitSpec):
            if not isinstance(spec, Mapping):
                raise ConfigError("spec", f"must be a CircuitSpec or a dict of its fields, got {type(spec).__name__}")
            spec = CircuitSpec.from_config(spec)
        self.spec = spec
        if spec.weight_init_std is None:
            weights = torch.rand(spec.weight_shape) * 2 * math.pi
        else:
            weights = torch.randn(spec.weight_shape) * spec.weight_init_std
        if spec.ansatz == "controlled_rotations":
            weights[..., 3] = 0.0  # the CRZ entanglers start switched off (see CircuitSpec)
        if spec.trainable_weights:
            self.weights = nn.Parameter(weights)
        else:  # frozen: a buffer, so no optimizer ever sees it, but state_dict (syncs, checkpoints) does
            self.register_buffer("weights", weights)
        scale = torch.full((spec.n_encodings, spec.n_qubits), spec.input_scale_init)
        if spec.input_scaling:
            self.input_scale = nn.Parameter(scale)
        else:
            self.register_buffer("input_scale", scale)
        out_scale = torch.full((spec.n_readouts,), spec.output_scale_init)
        if spec.output_scaling:
            self.output_scale = nn.Parameter(out_scale)
        elif spec.output_scale_init != 1.0:
            self.register_buffer("output_scale", out_scale)
        else:
            self.output_scale = None
        self._execution_path = _choose_execution_path(spec)
        self._fast = StatevectorCircuit(spec) if self._execution_path == "fast" else None
        self._qnode = None
        self._weights_cache: Optional[_WeightsCache] = None

    @property
    def execution_path(self) -> str:
        """``"fast"`` (torch statevector) or ``"pennylane"`` (QNode): how ``forward`` runs the circuit."""
        return self._execution_path

    @property
    def statevector(self) -> Optional[StatevectorCircuit]:
        """The torch simulator of the fast path (``None`` on the PennyLane path)."""
        return self._fast

    # The QNode (and its device) and cached operators never travel: rebuilt where the layer is used.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_qnode"] = None
        state["_weights_cache"] = None
        state.pop("_stacked_operators_cache", None)  # see rllib_quantum.circuits.stacking
        return state

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"n_qubits={s.n_qubits}, n_layers={s.n_layers}, ansatz={s.ansatz!r}, encoding={s.encoding!r}, "
            f"n_outputs={s.n_outputs}, observables={s.observables!r}, device={s.device!r}, execution={s.execution!r}, "
            f"execution_path={self._execution_path!r}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spec.n_qubits:
            raise ValueError(
                f"QuantumLayer expects inputs with last dimension n_qubits={self.spec.n_qubits}, got shape {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.spec.n_qubits)
        if self._execution_path == "fast":
            out = self._fast_forward(flat).to(x.dtype)
        else:
            out = self._pennylane_forward(flat).to(x.dtype)
        if self.output_scale is not None:
            out = (out * self.output_scale).to(x.dtype)
        return out.reshape(*lead, self.spec.n_readouts)

    def _pennylane_forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_qubits) -> (B, n_readouts) through the PennyLane QNode (float64)."""
        if self._qnode is None:
            self._qnode = build_qnode(self.spec)
        outs = self._qnode(x, self.weights, self.input_scale)
        out = torch.stack(list(outs), dim=-1) if isinstance(outs, (list, tuple)) else outs.unsqueeze(-1)
        if out.dim() == 1:  # a single-sample batch may come back unbroadcast
            out = out.unsqueeze(0)
        return out.reshape(x.shape[0], self.spec.n_readouts)

    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_qubits) -> (B, n_readouts) through the torch statevector (float32, or float64 if any input is)."""
        grad = torch.is_grad_enabled() and (
            x.requires_grad or self.weights.requires_grad or self.input_scale.requires_grad
        )
        dense = self._fast.prefers_dense(x.shape[0], grad)
        compiled = None
        if not (torch.is_grad_enabled() and self.weights.requires_grad):
            compiled = self._cached_weights(real_dtype_for(x, self.weights, self.input_scale), dense)
        return self._fast(x, self.weights, self.input_scale, compiled=compiled, dense=dense)

    def _cached_weights(self, rdtype: torch.dtype, dense: bool) -> CompiledWeights:
        """The fast path's weights-only operators, recomputed only when the weights have changed.

        The cache is keyed on the weights' version counter (bumped by every in-place update:
        optimizer steps, ``load_state_dict``, ``copy_`` under ``no_grad``), storage pointer, dtype
        and device, and also compared by value, since writes through ``weights.data`` bypass the
        version counter.
        """
        w = self.weights
        key = (w._version, w.data_ptr(), w.dtype, w.device)
        cache = self._weights_cache
        if cache is None or cache.key != key or not torch.equal(cache.snapshot, w):
            with torch.inference_mode(False), torch.no_grad():
                cache = self._weights_cache = _WeightsCache(key, w.detach().clone(), {})
        compiled = cache.compiled.get((rdtype, dense))
        if compiled is None:
            # Built outside inference mode so the cached tensors are usable anywhere autograd is off.
            with torch.inference_mode(False), torch.no_grad():
                compiled = cache.compiled[(rdtype, dense)] = self._fast.compile(w, rdtype, dense)
        return compiled


def _choose_execution_path(spec: CircuitSpec) -> str:
    """``"fast"`` or ``"pennylane"`` for ``spec.execution``; raises if ``"fast"`` cannot apply."""
    if spec.execution == "pennylane":
        return "pennylane"
    reason = fast_path_unsupported_reason(spec)
    if reason is None:
        return "fast"
    if spec.execution == "fast":
        raise ConfigError(
            "execution",
            f"'fast' cannot run this circuit: {reason}; use execution='auto' (falls back to PennyLane) or 'pennylane'",
        )
    return "pennylane"
