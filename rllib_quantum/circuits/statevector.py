"""The fast exact path: the circuit of a :class:`CircuitSpec` simulated as a batched statevector in torch.

This module computes exactly what :func:`rllib_quantum.circuits.templates.circuit` defines (same
gates, same wire order: wire 0 is the most significant bit of a basis index, as in PennyLane), with
plain torch operations, so a whole batch is a handful of kernels and torch autograd differentiates
it. Gate matrices are PennyLane's (``pennylane/ops/qubit/parametric_ops_single_qubit.py``)::

    RX(t) = [[c, -i s], [-i s, c]]      RY(t) = [[c, -s], [s, c]]      c = cos(t/2), s = sin(t/2)
    RZ(t) = diag(exp(-i t/2), exp(i t/2))
    Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)

The encoding is made diagonal by a fixed change of frame, ``RX(t) = H RZ(t) H`` and
``RY(t) = (S H) RZ(t) (S H)^dagger``: encoding a batch is one real matmul ``(B, n) @ (n, 2**n)``
(the phases ``-t.z(k)/2`` of every basis state ``k``) and one complex exponential, and the frame
matrices are folded into the variational layers, which then depend only on the weights. Two
strategies apply those layers and compute the same numbers (:meth:`StatevectorCircuit.prefers_dense`
picks one):

* **dense** (small registers): every layer (rotations, then its CNOT entangler, which is one fixed
  permutation of the ``2**n`` basis states, or its CRZ entangler, one diagonal of phases) is one
  ``2**n x 2**n`` matrix, applied as one complex
  matmul. With the weights fixed (:meth:`StatevectorCircuit.compile`), ``angle`` encoding
  multiplies all layers into one matrix: batch-1 inference is one encoding and one matrix-vector
  product.
* **factored** (larger registers, and training, where ``4**n`` matrices do not pay): per layer,
  Kronecker blocks of at most ``FACTORED_CHUNK_QUBITS`` wires applied as GEMMs, then the entangler
  as one gather with a precomputed permutation (CNOTs) or one product with a diagonal (CRZs).

Read-outs are ``|amplitude|**2`` times a fixed ``(2**n, n_readouts)`` matrix of signs: ``z_i(k)``
for ``<Z_i>``, the product ``z_i(k) z_j(k)`` for a correlator ``<Z_i Z_j>``.
Amplitudes are complex64 for float32 inputs and complex128 for float64.

Example:
    >>> import torch
    >>> from rllib_quantum.circuits.spec import CircuitSpec
    >>> spec = CircuitSpec(n_qubits=3, n_layers=2)
    >>> out = simulate(spec, torch.rand(5, 3), torch.rand(spec.weight_shape), torch.ones(2, 3))
    >>> out.shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from rllib_quantum.circuits.spec import CircuitSpec

# Devices whose exact (shots=None) results the fast path reproduces: pure-state simulators.
FAST_DEVICES = ("default.qubit", "lightning.qubit")
# When layers are dense 2**n x 2**n matrices rather than Kronecker blocks (measured on a 2-core CPU,
# one torch thread; see benchmarks/README.md and StatevectorCircuit.prefers_dense).
DENSE_MAX_QUBITS = 8  # no autograd, small batches (batch * matrices <= DENSE_MAX_ROWS)
DENSE_ALWAYS_QUBITS = 6  # no autograd, any batch
DENSE_TRAIN_MAX_QUBITS = 5  # with autograd
DENSE_MAX_ROWS = 64
# Wires per chunk in the factored strategy (chunk matrices are 2**k x 2**k per sample).
FACTORED_CHUNK_QUBITS = 4
# Marks a factored operation that multiplies the state by a diagonal of phases (CRZ entanglers).
PHASES = "phases"


# ---- when the fast path applies ----------------------------------------------------------------
def fast_path_unsupported_reason(spec: CircuitSpec) -> Optional[str]:
    """Why the fast path cannot reproduce ``spec``'s PennyLane results, or ``None`` if it can.

    The fast path is an exact pure-state simulation: it matches PennyLane on the noiseless
    statevector devices ``FAST_DEVICES`` with ``shots=None``. ``diff_method`` does not matter
    (all methods give the same exact gradients); torch autograd differentiates the fast path.

    Args:
        spec: the circuit to run.

    Example:
        >>> fast_path_unsupported_reason(CircuitSpec(n_qubits=2, shots=100, diff_method="parameter-shift"))
        'shots=100 asks for sampled expectation values; the fast path computes exact ones (shots=None)'
    """
    if spec.shots is not None:
        return f"shots={spec.shots} asks for sampled expectation values; the fast path computes exact ones (shots=None)"
    if spec.device not in FAST_DEVICES:
        return (
            f"device={spec.device!r} is not a noiseless statevector simulator the fast path reproduces "
            f"(allowed: {list(FAST_DEVICES)})"
        )
    return None


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64, complex64 for every other float dtype (float32, float16, bfloat16)."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def real_dtype_for(*tensors: torch.Tensor) -> torch.dtype:
    """The real dtype the simulation runs in: float64 if any input is float64, else float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# ---- gate matrices (PennyLane's definitions, batched over leading dims) -------------------------
# Every entry of a variational layer's single-qubit unitary is ``cos(a) * exp(i p)`` with ``a`` and
# ``p`` linear in the weights: ``[a | p] = w @ map + offset`` (entries u00, u01, u10, u11), so all
# rotations of all layers are one matmul, two cosines, one sine and a complex. From the matrices
# in the module docstring (c = cos(t/2) = cos(t/2 + 0), -s = cos(t/2 + pi/2), s = cos(t/2 - pi/2)):
#   Rot(phi, t, omega):  a = t/2 + [0, pi/2, -pi/2, 0],  p = [-(phi+omega), phi-omega, omega-phi, phi+omega] / 2
#   RZ(b) RY(t):         a = t/2 + [0, pi/2, -pi/2, 0],  p = [-b, -b, b, b] / 2
_ENTRY_MAPS = {
    "strongly_entangling": [  # rows: phi, theta, omega
        [0, 0, 0, 0, -0.5, 0.5, -0.5, 0.5],
        [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0],
        [0, 0, 0, 0, -0.5, -0.5, 0.5, 0.5],
    ],
    "hardware_efficient": [  # rows: RY angle, RZ angle
        [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0],
        [0, 0, 0, 0, -0.5, -0.5, 0.5, 0.5],
    ],
    "controlled_rotations": [  # rows: phi, theta, omega (a Rot, as strongly_entangling), CRZ angle (not a rotation)
        [0, 0, 0, 0, -0.5, 0.5, -0.5, 0.5],
        [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0],
        [0, 0, 0, 0, -0.5, -0.5, 0.5, 0.5],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ],
}
_ENTRY_OFFSETS = [0, math.pi / 2, -math.pi / 2, 0, 0, 0, 0, 0]
_entry_constants: Dict[tuple, Tuple[torch.Tensor, torch.Tensor]] = {}


def layer_rotations(spec: CircuitSpec, weights: torch.Tensor, layer: Optional[int] = None) -> torch.Tensor:
    """The single-qubit unitary each wire gets in a variational layer: ``(n_qubits, 2, 2)``.

    ``strongly_entangling`` and ``controlled_rotations``: PennyLane's ``Rot(w[l,i,0], w[l,i,1],
    w[l,i,2]) = RZ(w[l,i,2]) RY(w[l,i,1]) RZ(w[l,i,0])`` (a ``controlled_rotations`` layer's
    ``w[l,i,3]`` is its CRZ angle, no part of the rotation); ``hardware_efficient``:
    ``RZ(w[l,i,1]) @ RY(w[l,i,0])`` (``RY`` is applied first). Matrices as in the module docstring.

    Args:
        spec: the circuit.
        weights: ``spec.weight_shape`` real angles, optionally with leading stack dims.
        layer: the layer index; ``None``: every layer at once, ``(..., n_layers, n_qubits, 2, 2)``.

    Example:
        >>> spec = CircuitSpec(n_qubits=1, n_layers=1, ansatz="hardware_efficient")
        >>> (layer_rotations(spec, torch.tensor([[[math.pi, 0.0]]]), 0).real.round() + 0.0).tolist()   # RY(pi)
        [[[0.0, -1.0], [1.0, 0.0]]]
    """
    w = weights if layer is None else weights[..., layer, :, :]
    key = (spec.ansatz, w.dtype, str(w.device))
    if key not in _entry_constants:
        _entry_constants[key] = (
            torch.tensor(_ENTRY_MAPS[spec.ansatz], dtype=w.dtype, device=w.device),
            torch.tensor(_ENTRY_OFFSETS, dtype=w.dtype, device=w.device),
        )
    entry_map, offset = _entry_constants[key]
    magnitude_angle, phase = torch.addmm(offset, w.reshape(-1, w.shape[-1]), entry_map).split(4, dim=-1)
    magnitude = torch.cos(magnitude_angle)
    entries = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
    return entries.reshape(*w.shape[:-1], 2, 2)


def entangler_cnots(spec: CircuitSpec, layer: int) -> List[Tuple[int, int]]:
    """The ``(control, target)`` CNOTs of layer ``layer``, in application order (see ``templates``)."""
    n = spec.n_qubits
    if n == 1 or spec.ansatz == "controlled_rotations":  # its entanglers are CRZ phases, not CNOTs
        return []
    if spec.ansatz == "strongly_entangling":
        r = spec.entangler_range(layer)
        return [(i, (i + r) % n) for i in range(n)]
    if n == 2:
        return [(0, 1)]
    return [(i, (i + 1) % n) for i in range(n)]


def cnot_permutation(n_qubits: int, cnots: Sequence[Tuple[int, int]]) -> Optional[torch.Tensor]:
    """The basis permutation of a CNOT sequence: ``(C psi)[k] == psi[perm[k]]`` (``None``: identity).

    Args:
        n_qubits: register size; wire ``i`` is bit ``n_qubits - 1 - i`` of a basis index.
        cnots: ``(control, target)`` pairs in application order.

    Example:
        >>> cnot_permutation(2, [(0, 1)]).tolist()   # |10> <-> |11>
        [0, 1, 3, 2]
    """
    if not cnots:
        return None
    image = torch.arange(2**n_qubits)  # where each basis state |b> ends up
    for control, target in cnots:
        cbit, tbit = n_qubits - 1 - control, n_qubits - 1 - target
        image = image ^ (((image >> cbit) & 1) << tbit)
    perm = torch.empty_like(image)
    perm[image] = torch.arange(2**n_qubits)
    return perm


def kron_chain(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``kron(mats[0], mats[1], ...)`` over the last two dims, batched over leading dims (broadcast)."""
    out = mats[0]
    for m in mats[1:]:
        lead = torch.broadcast_shapes(out.shape[:-2], m.shape[:-2])
        a, b = out.shape[-1], m.shape[-1]
        out = (out[..., :, None, :, None] * m[..., None, :, None, :]).reshape(*lead, a * b, a * b)
    return out


def _chunks(n_qubits: int, size: int) -> List[Tuple[int, int]]:
    """``(start, length)`` blocks of consecutive wires, as equal as possible, each at most ``size``."""
    count = math.ceil(n_qubits / size)
    base, extra = divmod(n_qubits, count)
    out, start = [], 0
    for c in range(count):
        length = base + (1 if c < extra else 0)
        out.append((start, length))
        start += length
    return out


# ---- weights-only part of the circuit ------------------------------------------------------------
class CompiledWeights(NamedTuple):
    """Everything the circuit needs from its weights, computed once (see :meth:`StatevectorCircuit.compile`).

    ``dense``: ``layers`` is one tensor ``(..., n_layers, 2**n, 2**n)`` of transposed layer
    matrices, to right-multiply row states (one matrix in all for ``angle`` encoding: every layer
    multiplied); leading dims are stack dims (one circuit per entry, see
    :meth:`StatevectorCircuit.__call__`). Factored:
    ``layers[l]`` is a tuple of operations, ``(start, length, matrix)`` for a Kronecker block on
    wires ``start .. start+length-1``, ``(None, None, perm)`` for a basis permutation or
    ``(PHASES, None, phases)`` for a diagonal (``2**n`` unit phases, CRZ entanglers).
    """

    dense: bool
    layers: Union[torch.Tensor, tuple]


class _Constants(NamedTuple):
    phase_signs: torch.Tensor  # (n, 2**n) real: -z_i(k) / 2, z_i(k) = 1 - 2 * bit_i(k)
    readout_pairs: torch.Tensor  # (2 * 2**n, n_readouts) real: prod of z_i(k) over a read-out's wires, rows twice
    start: torch.Tensor  # (2**n,) real, >= 0: frame^dagger |0...0> (a real state up to phase)
    frame: Optional[torch.Tensor]  # (2, 2) complex v with R(t) = v RZ(t) v^dagger; None for Z
    perms: Tuple[Optional[Tuple[torch.Tensor, torch.Tensor]], ...]  # per layer: (perm, inverse)
    frame_perms: Tuple[Optional[Tuple[torch.Tensor, torch.Tensor]], ...]  # per layer: H^n P H^n (X only)
    layer_perms: torch.Tensor  # (n_layers, 2**n) long: each layer's entangler permutation (identity rows for none)
    frame_dagger: Optional[torch.Tensor]  # (2**n, 2**n) complex: (frame^dagger)^(x n); None for Z
    crz_signs: Optional[torch.Tensor]  # (n_layers, n, 2**n) real: -bit_c(k) z_t(k) / 2 of wire i's CRZ, or None


class StatevectorCircuit:
    """The fast path for one :class:`CircuitSpec`: exact expectation values of a batch, in torch.

    Holds only the spec and small constant tensors (rebuilt per dtype and device, never pickled);
    weights are passed in on every call, so this object works for any copy of a layer's parameters.

    Args:
        spec: the circuit; :func:`fast_path_unsupported_reason` should be ``None`` for it (the
            simulation itself ignores ``device``, ``shots`` and ``diff_method``).

    Example:
        >>> import torch
        >>> spec = CircuitSpec(n_qubits=4, n_layers=3, encoding="angle")
        >>> sim = StatevectorCircuit(spec)
        >>> w, s = torch.rand(spec.weight_shape), torch.ones(1, 4)
        >>> compiled = sim.compile(w, torch.float32)        # reusable while w is unchanged
        >>> out = sim(torch.rand(1, 4), w, s, compiled=compiled)
        >>> out.shape, out.dtype
        (torch.Size([1, 4]), torch.float32)
    """

    def __init__(self, spec: CircuitSpec) -> None:
        if not isinstance(spec, CircuitSpec):
            raise TypeError(f"StatevectorCircuit takes a CircuitSpec, got {type(spec).__name__}")
        self.spec = spec
        self._constants: Dict[tuple, _Constants] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_constants"] = {}
        return state

    def __repr__(self) -> str:
        return f"StatevectorCircuit(n_qubits={self.spec.n_qubits}, n_layers={self.spec.n_layers})"

    def prefers_dense(self, batch: int, grad: bool) -> bool:
        """Whether the dense strategy is the faster one for this register, batch size and mode.

        Args:
            batch: rows per call.
            grad: whether autograd records the call (dense matrices cost ``4**n`` to differentiate).
        """
        n = self.spec.n_qubits
        if grad:
            return n <= DENSE_TRAIN_MAX_QUBITS
        n_matrices = 1 if self.spec.encoding == "angle" else self.spec.n_layers
        return n <= DENSE_ALWAYS_QUBITS or (n <= DENSE_MAX_QUBITS and batch * n_matrices <= DENSE_MAX_ROWS)

    # ---- constants -----------------------------------------------------------------------------
    def _consts(self, rdtype: torch.dtype, device: torch.device) -> _Constants:
        key = (rdtype, str(device))
        if key not in self._constants:
            with torch.inference_mode(False), torch.no_grad():
                self._constants[key] = self._build_constants(rdtype, device)
        return self._constants[key]

    def _build_constants(self, rdtype: torch.dtype, device: torch.device) -> _Constants:
        spec, n = self.spec, self.spec.n_qubits
        cdtype = complex_dtype_for(rdtype)
        index = torch.arange(2**n, device=device)
        bits = torch.stack([(index >> (n - 1 - i)) & 1 for i in range(n)])  # (n, 2**n), wire 0 = MSB
        zsigns_t = (1 - 2 * bits).to(rdtype)
        frame = None
        if spec.rotation == "X":
            frame = torch.tensor([[1, 1], [1, -1]], dtype=cdtype, device=device) / math.sqrt(2)  # H
        elif spec.rotation == "Y":
            frame = torch.tensor([[1, 1], [1j, -1j]], dtype=cdtype, device=device) / math.sqrt(2)  # S H
        start = torch.zeros(2**n, dtype=rdtype, device=device)
        if frame is not None:
            start += 2 ** (-n / 2)  # frame^dagger |0> = |+> for both H and S H
        else:
            start[0] = 1

        def perm_pair(cnots):
            perm = cnot_permutation(n, cnots)
            return None if perm is None else (perm.to(device), torch.argsort(perm).to(device))

        cnots = [entangler_cnots(spec, layer) for layer in range(spec.n_layers)]
        perms = tuple(perm_pair(c) for c in cnots)
        # H x H CNOT(c, t) H x H = CNOT(t, c): with the X frame, a layer's trailing H^n passes
        # through its entangler (see _factored_layer).
        frame_perms = tuple(perm_pair([(t, c) for c, t in cs]) for cs in cnots)
        signs = torch.stack([zsigns_t[list(wires)].prod(dim=0) for wires in spec.readout_wires], dim=1)
        readout = signs.repeat_interleave(2, dim=0).contiguous()
        layer_perms = torch.stack([index if p is None else p[0] for p in perms])
        frame_dagger = None if frame is None else kron_chain([frame.conj().T] * n)
        crz_signs = None
        if spec.ansatz == "controlled_rotations" and n > 1:  # CRZ(t) on (c, u): phase -t/2 * bit_c(k) * z_u(k)
            targets = [[(i + spec.entangler_range(layer)) % n for i in range(n)] for layer in range(spec.n_layers)]
            crz_signs = torch.stack([-0.5 * bits.to(rdtype) * zsigns_t[t] for t in targets])
        return _Constants(
            -0.5 * zsigns_t, readout, start, frame, perms, frame_perms, layer_perms, frame_dagger, crz_signs
        )

    def _entangler_phases(self, consts: _Constants, w: torch.Tensor) -> Optional[torch.Tensor]:
        """``exp(i phase(k))`` of every layer's CRZ entanglers, ``(..., n_layers, 2**n)`` (diagonal
        gates: all of a layer's CRZs are one phase per basis state); ``None`` without CRZs."""
        if consts.crz_signs is None:
            return None
        return _unit_phases(torch.einsum("...li,lik->...lk", w[..., 3], consts.crz_signs))

    # ---- weights -> operators -----------------------------------------------------------------
    def compile(
        self, weights: torch.Tensor, rdtype: Optional[torch.dtype] = None, dense: Optional[bool] = None
    ) -> CompiledWeights:
        """The weights-only operators, reusable for any inputs while ``weights`` is unchanged.

        Differentiable: call it with autograd on to train, or under ``torch.no_grad()`` to cache.

        Args:
            weights: ``spec.weight_shape`` variational angles; with the dense strategy also
                ``(..., ) + spec.weight_shape`` for several circuits at once.
            rdtype: the real dtype to compute in (float32 or float64); default: ``weights``'s.
            dense: the strategy (see the module docstring); default: :meth:`prefers_dense` for
                batch 1, with autograd if ``weights`` requires grad and grad mode is on.
        """
        spec = self.spec
        if dense is None:
            dense = self.prefers_dense(1, weights.requires_grad and torch.is_grad_enabled())
        stack_dims = weights.dim() - len(spec.weight_shape)  # (M,) + weight_shape: M circuits (dense only)
        if stack_dims < 0 or tuple(weights.shape[stack_dims:]) != spec.weight_shape or (stack_dims and not dense):
            allowed = f"{spec.weight_shape}" + (", or stacked (M,) + that" if dense else "")
            raise ValueError(f"weights must have shape {allowed} for this spec, got {tuple(weights.shape)}")
        rdtype = rdtype or real_dtype_for(weights)
        consts = self._consts(rdtype, weights.device)
        w = weights.to(rdtype)
        if dense:
            return CompiledWeights(True, self._dense_layers(consts, w))
        layers = []
        phases = self._entangler_phases(consts, w)
        for layer in range(spec.n_layers):
            rotations = layer_rotations(spec, w, layer)
            frame_in = consts.frame is not None and (spec.encoding == "reuploading" or layer == 0)
            frame_out = consts.frame is not None and spec.encoding == "reuploading" and layer < spec.n_layers - 1
            if frame_in:
                rotations = rotations @ consts.frame
            layer_phases = None if phases is None else phases[layer]
            layers.append(self._factored_layer(consts, rotations, layer, frame_out, layer_phases))
        return CompiledWeights(False, tuple(layers))

    def _dense_layers(self, consts: _Constants, w: torch.Tensor) -> torch.Tensor:
        """Every layer as one transposed ``2**n x 2**n`` matrix, all layers (and any leading stack
        dims of ``w``) at once: ``(..., n_layers, 2**n, 2**n)``, or ``(..., 1, 2**n, 2**n)`` for
        ``angle`` encoding (the layers multiplied). A few dozen tensor ops whatever the depth."""
        spec, n_layers = self.spec, self.spec.n_layers
        rotations = layer_rotations(spec, w)  # (..., L, n, 2, 2)
        if consts.frame is not None:  # the encoding's frame, folded into the layers it precedes
            if spec.encoding == "reuploading":
                rotations = rotations @ consts.frame
            else:
                rotations = torch.cat([rotations[..., :1, :, :, :] @ consts.frame, rotations[..., 1:, :, :, :]], dim=-4)
        mats = kron_chain(list(rotations.unbind(-3)))  # (..., L, 2**n, 2**n)
        rows = torch.arange(n_layers, device=w.device)[:, None]
        mats = mats[..., rows, consts.layer_perms, :]  # each layer's CNOT entangler: a row permutation
        phases = self._entangler_phases(consts, w)
        if phases is not None:  # each layer's CRZ entangler: a diagonal, i.e. a scaling of the rows
            mats = mats * phases.unsqueeze(-1)
        if consts.frame_dagger is not None and spec.encoding == "reuploading" and n_layers > 1:
            mats = torch.cat([consts.frame_dagger @ mats[..., :-1, :, :], mats[..., -1:, :, :]], dim=-3)
        if spec.encoding == "angle":
            total = mats[..., 0, :, :]
            for layer in range(1, n_layers):
                total = mats[..., layer, :, :] @ total
            mats = total.unsqueeze(-3)
        return mats.transpose(-1, -2)

    def _factored_layer(
        self,
        consts: _Constants,
        rotations: torch.Tensor,
        layer: int,
        frame_out: bool,
        phases: Optional[torch.Tensor] = None,
    ) -> tuple:
        """Layer ``layer`` as Kronecker blocks and a permutation, or a diagonal of ``phases`` for CRZ
        entanglers (then blocks of frame^dagger, for Y, or for X with CRZs)."""
        chunks = _chunks(self.spec.n_qubits, FACTORED_CHUNK_QUBITS)
        perm = consts.perms[layer]
        tail = []
        # H^n P kron(U) = P' kron(H U) (H is its own inverse); not for the CRZs' diagonal
        if frame_out and self.spec.rotation == "X" and phases is None:
            rotations = consts.frame @ rotations
            perm = consts.frame_perms[layer]
        elif frame_out:
            dagger = consts.frame.conj().T
            tail = [(s, k, kron_chain([dagger] * k)) for s, k in chunks]
        ops = [(s, k, kron_chain(list(rotations[s : s + k]))) for s, k in chunks]
        if perm is not None:
            ops.append((None, None, perm))
        if phases is not None:
            ops.append((PHASES, None, phases))
        return tuple(ops + tail)

    # ---- running ---------------------------------------------------------------------------------
    def __call__(
        self,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        input_scale: torch.Tensor,
        compiled: Optional[CompiledWeights] = None,
        dense: Optional[bool] = None,
    ) -> torch.Tensor:
        """The read-outs (``spec.readout_wires``) for each row of ``inputs``: ``(B, n_qubits) -> (B, n_readouts)``.

        With the dense strategy, any leading stack dims evaluate several circuits of this spec with
        their own weights in one call: ``inputs`` ``(M, B, n_qubits)``, ``weights`` ``(M,) +
        spec.weight_shape`` (or ``compiled`` from such weights), ``input_scale`` ``(M, n_encodings,
        n_qubits)`` give ``(M, B, n_readouts)``, row ``m`` equal to circuit ``m`` alone.

        Args:
            inputs: ``(..., B, n_qubits)`` features.
            weights: ``(...,) + spec.weight_shape`` angles (unused when ``compiled`` is given).
            input_scale: ``(..., spec.n_encodings, n_qubits)`` factors on the inputs.
            compiled: :meth:`compile` of ``weights`` in the same real dtype, to skip recomputing it
                (its strategy is used).
            dense: the strategy when ``compiled`` is not given; default: :meth:`prefers_dense`.

        Returns:
            expectation values in float64 if any of the tensors is float64, else float32.
        """
        spec = self.spec
        if inputs.dim() < 2 or inputs.shape[-1] != spec.n_qubits:
            raise ValueError(f"inputs must have shape (batch, {spec.n_qubits}), got {tuple(inputs.shape)}")
        rdtype = real_dtype_for(inputs, weights, input_scale)
        consts = self._consts(rdtype, inputs.device)
        if compiled is None:
            if dense is None:
                grad = torch.is_grad_enabled() and any(t.requires_grad for t in (inputs, weights, input_scale))
                dense = self.prefers_dense(inputs.shape[-2], grad)
            compiled = self.compile(weights, rdtype, dense)
        if not compiled.dense and inputs.dim() != 2:
            raise ValueError(f"stacked inputs {tuple(inputs.shape)} need the dense strategy")
        if compiled.dense:
            return self.run_dense(inputs, compiled.layers, input_scale)
        phases = self._phases(consts, inputs, input_scale, rdtype)
        psi = _unit_phases(phases[:, 0]) * consts.start
        for layer, ops in enumerate(compiled.layers):
            if layer > 0 and spec.encoding == "reuploading":
                psi = psi * _unit_phases(phases[:, layer])
            for start, length, op in ops:
                if start is PHASES:
                    psi = psi * op
                else:
                    psi = _Permute.apply(psi, *op) if start is None else _apply_block(psi, op, start, length)
        # |amplitude|**2 summed against the read-out signs in one matmul: (re, im) pairs interleaved.
        squares = torch.view_as_real(psi).flatten(-2).square()
        return squares @ consts.readout_pairs

    @staticmethod
    def _phases(consts: _Constants, inputs: torch.Tensor, input_scale: torch.Tensor, rdtype: torch.dtype) -> torch.Tensor:
        """exp(-i/2 sum_i t_i z_i(k)) is the diagonal of RZ(t_0) x ... x RZ(t_{n-1}): its phases for
        every encoding at once, ``(..., B, n_encodings, 2**n)``."""
        angles = inputs.to(rdtype).unsqueeze(-2) * input_scale.to(rdtype).unsqueeze(-3)  # (..., B, n_enc, n)
        return angles @ consts.phase_signs

    def run_dense(self, inputs: torch.Tensor, layers: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
        """The read-outs for given dense layer matrices: ``__call__``'s dense strategy with
        ``layers = compile(weights, dense=True).layers`` (``(..., L, 2**n, 2**n)``, complex),
        differentiable w.r.t. ``layers`` itself.

        Args:
            inputs: ``(..., B, n_qubits)``; input_scale: ``(..., n_encodings, n_qubits)``.
        """
        rdtype = real_dtype_for(inputs, input_scale, torch.view_as_real(layers))
        consts = self._consts(rdtype, inputs.device)
        phases = self._phases(consts, inputs, input_scale, rdtype)
        return _DenseRun.apply(phases, layers, consts.start, consts.readout_pairs, self.spec.encoding == "reuploading")


def _unit_phases(phases: torch.Tensor) -> torch.Tensor:
    """``exp(i * phases)`` (``torch.polar(1, phases)`` is 5x slower on CPU, its backward more so)."""
    return torch.complex(torch.cos(phases), torch.sin(phases))


def dense_layer_states(
    diagonals: torch.Tensor, layers: torch.Tensor, start: torch.Tensor, reuploading: bool
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The dense strategy's forward pass: the final state and every layer's input state.

    ``a_0 = start * d_0``, ``psi_l = a_l @ U_l``, ``a_l = psi_{l-1} * d_l`` (re-uploading layers
    ``l > 0``; else ``a_l = psi_{l-1}``), with the encoding diagonals ``diagonals`` ``(..., B,
    n_encodings, 2**n)`` (``exp(i phases)``) and the transposed layer matrices ``layers`` ``(...,
    L, 2**n, 2**n)``. Returns ``(psi_{L-1}, [a_0, ..., a_{L-1}])``.
    """
    psi = diagonals[..., 0, :] * start
    inputs_of_layer = []
    for layer in range(layers.shape[-3]):
        if layer > 0 and reuploading:
            psi = psi * diagonals[..., layer, :]
        inputs_of_layer.append(psi)
        psi = psi @ layers[..., layer, :, :]
    return psi, inputs_of_layer


class _DenseRun(torch.autograd.Function):
    """The dense strategy's run, inputs to read-outs, with a hand-written adjoint backward.

    Forward: ``a_0 = start * d_0``, ``psi_l = a_l @ U_l``, ``a_l = psi_{l-1} * d_l`` (re-uploading
    layers ``l > 0``; else ``a_l = psi_{l-1}``), ``out = |psi_{L-1}|**2 @ R``, with the encoding
    diagonals ``d_e = exp(i phases_e)``, the transposed layer matrices ``U_l`` (any leading stack
    dims) and read-out signs ``R``. Backward, from the last layer down, in torch's convention for
    complex gradients (``grad = dL/dRe + i dL/dIm``)::

        g = 2 * psi_{L-1} * (grad_out @ R^T)
        grad U_l = a_l^H @ g,   g_a = g @ U_l^H,   grad phases_l = Im(g_a * conj(a_l)),
        g = g_a * conj(d_l)  (re-uploading)  or  g_a

    Two matmuls and three elementwise products per layer, no autograd graph inside (autograd's
    version of the same math takes about twice as long at 5 qubits; ``tests/test_fast_path.py``
    checks the gradients against PennyLane).
    """

    @staticmethod
    def forward(ctx, phases, layers, start, readout_pairs, reuploading: bool):
        diagonals = _unit_phases(phases)  # (..., B, n_encodings, 2**n)
        psi, inputs_of_layer = dense_layer_states(diagonals, layers, start, reuploading)
        ctx.save_for_backward(diagonals, layers, readout_pairs, psi, *inputs_of_layer)
        ctx.reuploading = reuploading
        return torch.view_as_real(psi).flatten(-2).square() @ readout_pairs

    @staticmethod
    def backward(ctx, grad_out):
        diagonals, layers, readout_pairs, psi, *inputs_of_layer = ctx.saved_tensors
        need_phases, need_layers = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n_layers = len(inputs_of_layer)
        weights = 2 * (grad_out @ readout_pairs[0::2].T)  # real; a complex factor multiplies faster
        g = psi * torch.complex(weights, torch.zeros_like(weights))
        adjoints = layers.mH.contiguous().unbind(-3)
        conj_diagonals = diagonals.conj().unbind(-2) if ctx.reuploading else None
        grad_layers, grad_phases = [None] * n_layers, [None] * diagonals.shape[-2]
        for layer in reversed(range(n_layers)):
            a = inputs_of_layer[layer]
            if need_layers:
                grad_layers[layer] = a.mH @ g
            g = g @ adjoints[layer]
            if need_phases and (layer == 0 or ctx.reuploading):
                grad_phases[layer] = (g * a.conj()).imag
            if layer > 0 and ctx.reuploading:
                g = g * conj_diagonals[layer]
        # inputs with stack dims over unstacked layers: sum over the broadcast dims
        grad_layers = torch.stack(grad_layers, dim=-3).sum_to_size(layers.shape) if need_layers else None
        grad_phases = torch.stack(grad_phases, dim=-2) if need_phases else None
        return grad_phases, grad_layers, None, None, None


class _Permute(torch.autograd.Function):
    """``psi[:, perm]`` whose backward is another gather (faster than index_select's scatter-add)."""

    @staticmethod
    def forward(ctx, psi, perm, inverse):
        ctx.save_for_backward(inverse)
        return psi.index_select(1, perm)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def _apply_block(psi: torch.Tensor, block: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """Applies the ``(2**length, 2**length)`` ``block`` to wires ``start .. start+length-1`` of ``psi``.

    ``psi`` is ``(B, 2**n)``; the last block is one GEMM, the others a matmul broadcast over the
    wires before the block.
    """
    batch, k = psi.shape
    size = 2**length
    left, right = 2**start, k // (2**start * size)
    if right == 1:
        return (psi.reshape(batch * left, size) @ block.T).reshape(batch, -1)
    return torch.matmul(block, psi.reshape(batch * left, size, right)).reshape(batch, -1)


def simulate(
    spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor, input_scale: torch.Tensor
) -> torch.Tensor:
    """One-shot fast-path evaluation: ``(B, n_qubits)`` inputs to ``(B, n_readouts)`` expectation values.

    Args:
        spec: the circuit.
        inputs: ``(B, n_qubits)`` features.
        weights: ``spec.weight_shape`` variational angles.
        input_scale: ``(spec.n_encodings, n_qubits)`` factors on the inputs.

    Example:
        >>> import torch
        >>> spec = CircuitSpec(n_qubits=1, n_layers=1, ansatz="hardware_efficient", rotation="Y")
        >>> round(float(simulate(spec, torch.tensor([[math.pi / 2]]), torch.zeros(1, 1, 2), torch.ones(1, 1))), 6)
        0.0
    """
    return StatevectorCircuit(spec)(inputs, weights, input_scale)
