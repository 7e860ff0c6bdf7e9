"""The one description of a variational circuit that every execution path reads.

A :class:`CircuitSpec` is plain data (no PennyLane objects, no tensors), so it pickles to Ray
workers and can be validated before anything heavy starts. The circuit it describes is documented
gate by gate in the README ("The circuits") and in :func:`rllib_quantum.circuits.templates.circuit`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
from typing import Any, Mapping, Optional

import numpy as np

from rllib_quantum.errors import ConfigError

ANSATZE = ("strongly_entangling", "hardware_efficient", "controlled_rotations")
ENCODINGS = ("angle", "reuploading")
ROTATIONS = ("X", "Y", "Z")
# What the circuit measures on its read-out wires: PauliZ of each, or also PauliZ x PauliZ of every pair.
OBSERVABLES = ("Z", "Z+ZZ")
DIFF_METHODS = ("backprop", "adjoint", "parameter-shift", "finite-diff", "best")
EXECUTIONS = ("auto", "pennylane", "fast")
# Devices we have run; any other installed PennyLane device name is accepted too (see _known_devices).
KNOWN_DEVICES = ("default.qubit", "lightning.qubit", "default.mixed")

# Largest register a CircuitSpec accepts. Both execution paths simulate a statevector of 2**n_qubits
# complex amplitudes per sample (8 bytes each as complex64): 24 qubits is 128 MiB per sample,
# every further qubit doubles it.
MAX_QUBITS = 24
_AMPLITUDE_BYTES = 8  # complex64

# Trainable weights per qubit and layer, by ansatz.
WEIGHTS_PER_QUBIT = {"strongly_entangling": 3, "hardware_efficient": 2, "controlled_rotations": 4}


def _known_devices() -> tuple:
    """Device names PennyLane can construct here: ours plus every installed plugin."""
    try:
        from pennylane.devices.device_constructor import plugin_devices

        return tuple(sorted(set(KNOWN_DEVICES) | set(plugin_devices)))
    except Exception:  # pragma: no cover - older PennyLane layouts
        return KNOWN_DEVICES


def _given(value: Any) -> str:
    return f"got {value!r} ({type(value).__name__})"


def is_int(value: Any) -> bool:
    """An integer, Python's or numpy's (``np.int64`` from ``np.arange`` loops), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_int(key: str, value: Any, minimum: int, maximum: Optional[int] = None, why: str = "") -> int:
    """``value`` as a Python int if it is an integer in range, else ConfigError."""
    want = f"an int >= {minimum}" if maximum is None else f"an int in {minimum}..{maximum}"
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(key, f"must be {want}{why}, {_given(value)}")
    return int(value)


def _check_choice(key: str, value: Any, allowed: tuple) -> str:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")
    return value


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, {_given(value)}")
    return value


def _statevector_memory(n_qubits: int) -> str:
    """Memory of one ``n_qubits`` statevector (complex64) in GiB/TiB, as a power of 2 when huge.

    Pure integer exponents, so astronomically large registers never overflow a float.

    Example:
        >>> _statevector_memory(24), _statevector_memory(40), _statevector_memory(10000)
        ('0.125 GiB', '8 TiB', '2**10003 bytes (2**9963 TiB)')
    """
    exponent = n_qubits + 3  # 2**n amplitudes x 8 bytes
    if exponent < 40:
        return f"{2.0 ** (exponent - 30):g} GiB"
    if exponent <= 60:
        return f"{2 ** (exponent - 40)} TiB"
    return f"2**{exponent} bytes (2**{exponent - 40} TiB)"


def _check_n_qubits(value: Any) -> int:
    if is_int(value) and value > MAX_QUBITS:
        raise ConfigError(
            "n_qubits",
            f"must be an int in 1..{MAX_QUBITS}, got {value} (a statevector of {value} qubits needs 2**{value} "
            f"complex64 amplitudes = {_statevector_memory(value)} per sample; MAX_QUBITS is {MAX_QUBITS})",
        )
    return _check_int("n_qubits", value, 1, MAX_QUBITS)


@dataclasses.dataclass(frozen=True)
class CircuitSpec:
    """A variational quantum circuit: encoding, ansatz, read-out and how to run it.

    Args:
        n_qubits: register size, 1 to :data:`MAX_QUBITS` (24); the input has this many features, one per wire.
        n_layers: variational layers (>= 1).
        ansatz: ``"strongly_entangling"`` (``Rot`` on every wire + CNOT entanglers of growing
            range, PennyLane's ``StronglyEntanglingLayers``), ``"hardware_efficient"``
            (``RY``, ``RZ`` on every wire + a CNOT ring) or ``"controlled_rotations"`` (``Rot``
            on every wire + trainable ``CRZ`` entanglers over the same pairs as
            ``strongly_entangling``; their angles start at 0, so the circuit starts as a product
            of one-wire circuits, a sum of one-feature functions under a linear read-out, and
            learns its entanglement).
        encoding: ``"angle"`` (inputs encoded once, before the first layer) or ``"reuploading"``
            (inputs re-encoded before every layer).
        rotation: the encoding rotation, ``"X"``, ``"Y"`` or ``"Z"``.
        n_outputs: read-out wires ``0 .. n_outputs-1``; default: every wire.
        observables: what is measured on the read-out wires: ``"Z"`` (default), ``<Z_i>`` of
            each; ``"Z+ZZ"``, those followed by the two-wire correlators ``<Z_i Z_j>`` of every
            pair ``i < j`` in lexicographic order (``(0, 1), (0, 2), ..., (1, 2), ...``):
            ``n_outputs * (n_outputs + 1) / 2`` read-outs in all (:attr:`n_readouts`). A
            correlator carries what neither wire shows alone (``<Z_0 Z_1> != <Z_0><Z_1>`` on an
            entangled state), so a trained linear read-out can weigh relations between features.
        trainable_weights: train the variational weights (default). ``False`` freezes them at
            their random initialisation (an ablation: only scalings and classical parts learn);
            they stay in the module's state, so checkpoints and weight syncs carry them.
        input_scaling: trainable per-layer, per-wire factors on the inputs (else fixed).
        output_scaling: trainable factors on the expectation values, one per read-out (else fixed).
        input_scale_init: initial (or fixed) value of every input factor, e.g. ``3.14`` to spread
            inputs in [-1, 1] over a full turn of the encoding rotation.
        output_scale_init: initial (or fixed) value of every output factor; larger values make
            the read-outs sharper logits.
        weight_init_std: ``None`` (default) draws the variational weights uniformly from
            ``[0, 2 pi)``, as PennyLane's templates are usually initialised; a positive number
            draws them from a normal distribution with that standard deviation around 0, so that
            every rotation starts near the identity (small-angle initialisation, a remedy for
            the barren plateaus of deep random circuits: Zhang et al., NeurIPS 2022,
            arXiv:2203.09376). The circuit then starts close to its encoding and entanglers
            alone, and its read-outs vary more with the input.
        device: PennyLane device name (``"default.qubit"``, ``"lightning.qubit"``, ...).
        diff_method: PennyLane differentiation method (``"backprop"``, ``"adjoint"``, ...).
        shots: ``None`` for exact expectation values, else the number of samples per evaluation.
        execution: ``"auto"`` (the fast torch statevector path where it applies, PennyLane
            elsewhere), ``"pennylane"`` (always a PennyLane QNode) or ``"fast"`` (fail if the fast
            path cannot run this circuit).

    Qubit limit: ``n_qubits`` may be at most :data:`MAX_QUBITS` (24). Every execution path
    simulates a statevector of ``2**n_qubits`` complex amplitudes per sample (8 bytes each as
    complex64, twice that as complex128: 128 MiB at 24 qubits, doubling with every further qubit),
    so a larger register is refused up front with the memory it would need.

    Raises:
        ConfigError: a field out of range or of the wrong type; ``key`` names the field.

    Example:
        >>> spec = CircuitSpec.from_config({"n_qubits": 4, "n_layers": 2})
        >>> spec.weight_shape
        (2, 4, 3)
    """

    n_qubits: int = 4
    n_layers: int = 2
    ansatz: str = "strongly_entangling"
    encoding: str = "reuploading"
    rotation: str = "X"
    n_outputs: Optional[int] = None
    observables: str = "Z"
    trainable_weights: bool = True
    input_scaling: bool = True
    output_scaling: bool = True
    input_scale_init: float = 1.0
    output_scale_init: float = 1.0
    weight_init_std: Optional[float] = None
    device: str = "default.qubit"
    diff_method: str = "backprop"
    shots: Optional[int] = None
    execution: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_qubits", _check_n_qubits(self.n_qubits))
        object.__setattr__(self, "n_layers", _check_int("n_layers", self.n_layers, 1))
        _check_choice("ansatz", self.ansatz, ANSATZE)
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("rotation", self.rotation, ROTATIONS)
        if self.n_outputs is None:
            object.__setattr__(self, "n_outputs", self.n_qubits)
        object.__setattr__(
            self, "n_outputs", _check_int("n_outputs", self.n_outputs, 1, self.n_qubits, why=" (<= n_qubits: one PauliZ read-out per wire)")
        )
        _check_choice("observables", self.observables, OBSERVABLES)
        _check_bool("trainable_weights", self.trainable_weights)
        _check_bool("input_scaling", self.input_scaling)
        _check_bool("output_scaling", self.output_scaling)
        for key in ("input_scale_init", "output_scale_init"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(key, f"must be a finite number, {_given(value)}")
            object.__setattr__(self, key, float(value))
        if self.weight_init_std is not None:
            value = self.weight_init_std
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    "weight_init_std",
                    f"must be null (uniform in [0, 2 pi)) or a finite number > 0 (normal around 0), {_given(value)}",
                )
            object.__setattr__(self, "weight_init_std", float(value))
        if not isinstance(self.device, str):
            raise ConfigError("device", f"must be a PennyLane device name (a str), {_given(self.device)}")
        devices = _known_devices()
        _check_choice("device", self.device, devices)
        _check_choice("diff_method", self.diff_method, DIFF_METHODS)
        if self.shots is not None:
            object.__setattr__(self, "shots", _check_int("shots", self.shots, 1))
            if self.diff_method == "backprop":
                raise ConfigError(
                    "shots",
                    f"needs a diff_method other than 'backprop' (allowed with shots: "
                    f"{[m for m in DIFF_METHODS if m not in ('backprop', 'adjoint')]}), got shots={self.shots}",
                )
        _check_choice("execution", self.execution, EXECUTIONS)

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def weight_shape(self) -> tuple:
        """Shape of the variational weights: ``(n_layers, n_qubits, weights_per_qubit)``."""
        return (self.n_layers, self.n_qubits, WEIGHTS_PER_QUBIT[self.ansatz])

    @functools.cached_property  # read on every forward pass (output width): computed once per spec
    def readout_wires(self) -> tuple:
        """The measured observables, as wire tuples in read-out order: ``(i,)`` for ``<Z_i>``,
        ``(i, j)`` for ``<Z_i Z_j>``.

        Example:
            >>> CircuitSpec(n_qubits=3, observables="Z+ZZ").readout_wires
            ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
        """
        singles = tuple((i,) for i in range(self.n_outputs))
        if self.observables == "Z":
            return singles
        return singles + tuple(itertools.combinations(range(self.n_outputs), 2))

    @property
    def n_readouts(self) -> int:
        """How many expectation values the circuit returns (the width of its output)."""
        return len(self.readout_wires)

    @property
    def n_encodings(self) -> int:
        """How many times the input is encoded (1, or n_layers with re-uploading)."""
        return self.n_layers if self.encoding == "reuploading" else 1

    def entangler_range(self, layer: int) -> int:
        """Entangler range of layer ``layer`` (PennyLane's default ranges): ``strongly_entangling``
        and ``controlled_rotations`` entangle wire ``i`` with wire ``(i + range) mod n``."""
        return (layer % (self.n_qubits - 1)) + 1 if self.n_qubits > 1 else 0

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the circuit: weights (unless frozen) + input and output scaling."""
        n = self.n_layers * self.n_qubits * WEIGHTS_PER_QUBIT[self.ansatz] if self.trainable_weights else 0
        if self.input_scaling:
            n += self.n_encodings * self.n_qubits
        if self.output_scaling:
            n += self.n_readouts
        return n

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]] = None, prefix: str = "") -> "CircuitSpec":
        """Builds a spec from a plain dict, rejecting unknown keys by name.

        Args:
            config: keys are this class's field names; missing keys take the defaults.
            prefix: dotted key path of ``config`` (e.g. ``"model_config.circuit"``), put in front of
                the key of every :class:`~rllib_quantum.errors.ConfigError` raised here.

        Raises:
            ConfigError: an unknown key (``key`` is ``prefix``, the section) or a bad value
                (``key`` is ``prefix.<field>``).

        Example:
            >>> CircuitSpec.from_config({"n_qubits": 0}, prefix="circuit")
            Traceback (most recent call last):
            ...
            rllib_quantum.errors.ConfigError: circuit.n_qubits: must be an int in 1..24, got 0 (int)
        """
        prefix = prefix.rstrip(".")
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ConfigError("", f"must be a mapping of circuit keys, {_given(config)}").under(prefix)
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in set(config) - set(allowed))
        if unknown:
            raise ConfigError("", f"unknown key(s) {unknown}; allowed: {allowed}").under(prefix)
        try:
            return cls(**config)
        except ConfigError as err:
            raise err.under(prefix) from None

    def to_config(self) -> dict:
        """The plain-dict form of this spec (round-trips through :meth:`from_config`)."""
        return dataclasses.asdict(self)
