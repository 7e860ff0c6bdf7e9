"""The one description of a variational circuit that every execution path reads.

A :class:`CircuitSpec` is plain data (no PennyLane objects, no tensors), so it pickles to Ray
workers and can be validated before anything heavy starts. The circuit it describes is documented
gate by gate in the README ("The circuits") and in :func:`rllib_quantum.circuits.templates.circuit`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

ANSATZE = ("strongly_entangling", "hardware_efficient")
ENCODINGS = ("angle", "reuploading")
ROTATIONS = ("X", "Y", "Z")
DIFF_METHODS = ("backprop", "adjoint", "parameter-shift", "finite-diff", "best")
EXECUTIONS = ("auto", "pennylane", "fast")
# Devices we have run; any other installed PennyLane device name is accepted too (see _known_devices).
KNOWN_DEVICES = ("default.qubit", "lightning.qubit", "default.mixed")

# Trainable weights per qubit and layer, by ansatz.
WEIGHTS_PER_QUBIT = {"strongly_entangling": 3, "hardware_efficient": 2}


def _known_devices() -> tuple:
    """Device names PennyLane can construct here: ours plus every installed plugin."""
    try:
        from pennylane.devices.device_constructor import plugin_devices

        return tuple(sorted(set(KNOWN_DEVICES) | set(plugin_devices)))
    except Exception:  # pragma: no cover - older PennyLane layouts
        return KNOWN_DEVICES


def _check_int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"circuit key {key!r} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"circuit key {key!r} must be >= {minimum}, got {value}")
    return value


def _check_choice(key: str, value: Any, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"circuit key {key!r} must be one of {list(allowed)}, got {value!r}")
    return value


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"circuit key {key!r} must be true or false, got {value!r} ({type(value).__name__})")
    return value


@dataclasses.dataclass(frozen=True)
class CircuitSpec:
    """A variational quantum circuit: encoding, ansatz, read-out and how to run it.

    Args:
        n_qubits: register size (>= 1); the input has this many features, one per wire.
        n_layers: variational layers (>= 1).
        ansatz: ``"strongly_entangling"`` (``Rot`` on every wire + CNOT entanglers of growing
            range, PennyLane's ``StronglyEntanglingLayers``) or ``"hardware_efficient"``
            (``RY``, ``RZ`` on every wire + a CNOT ring).
        encoding: ``"angle"`` (inputs encoded once, before the first layer) or ``"reuploading"``
            (inputs re-encoded before every layer).
        rotation: the encoding rotation, ``"X"``, ``"Y"`` or ``"Z"``.
        n_outputs: read-out wires ``0 .. n_outputs-1`` (``PauliZ`` expectation each);
            default: every wire.
        trainable_weights: train the variational weights (default). ``False`` freezes them at
            their random initialisation (an ablation: only scalings and classical parts learn);
            they stay in the module's state, so checkpoints and weight syncs carry them.
        input_scaling: trainable per-layer, per-wire factors on the inputs (else fixed).
        output_scaling: trainable per-output factors on the expectation values (else fixed).
        input_scale_init: initial (or fixed) value of every input factor, e.g. ``3.14`` to spread
            inputs in [-1, 1] over a full turn of the encoding rotation.
        output_scale_init: initial (or fixed) value of every output factor; larger values make
            the read-outs sharper logits.
        device: PennyLane device name (``"default.qubit"``, ``"lightning.qubit"``, ...).
        diff_method: PennyLane differentiation method (``"backprop"``, ``"adjoint"``, ...).
        shots: ``None`` for exact expectation values, else the number of samples per evaluation.
        execution: ``"auto"`` (the fast torch statevector path where it applies, PennyLane
            elsewhere), ``"pennylane"`` (always a PennyLane QNode) or ``"fast"`` (fail if the fast
            path cannot run this circuit).

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
    trainable_weights: bool = True
    input_scaling: bool = True
    output_scaling: bool = True
    input_scale_init: float = 1.0
    output_scale_init: float = 1.0
    device: str = "default.qubit"
    diff_method: str = "backprop"
    shots: Optional[int] = None
    execution: str = "auto"

    def __post_init__(self) -> None:
        _check_int("n_qubits", self.n_qubits, 1)
        _check_int("n_layers", self.n_layers, 1)
        _check_choice("ansatz", self.ansatz, ANSATZE)
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("rotation", self.rotation, ROTATIONS)
        if self.n_outputs is None:
            object.__setattr__(self, "n_outputs", self.n_qubits)
        _check_int("n_outputs", self.n_outputs, 1)
        if self.n_outputs > self.n_qubits:
            raise ValueError(
                f"circuit key 'n_outputs' must be <= n_qubits ({self.n_qubits}): one PauliZ read-out "
                f"per wire, got {self.n_outputs}"
            )
        _check_bool("trainable_weights", self.trainable_weights)
        _check_bool("input_scaling", self.input_scaling)
        _check_bool("output_scaling", self.output_scaling)
        for key in ("input_scale_init", "output_scale_init"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"circuit key {key!r} must be a finite number, got {value!r} ({type(value).__name__})")
            object.__setattr__(self, key, float(value))
        if not isinstance(self.device, str):
            raise TypeError(f"circuit key 'device' must be a PennyLane device name, got {self.device!r}")
        devices = _known_devices()
        _check_choice("device", self.device, devices)
        _check_choice("diff_method", self.diff_method, DIFF_METHODS)
        if self.shots is not None:
            _check_int("shots", self.shots, 1)
            if self.diff_method == "backprop":
                raise ValueError(
                    "circuit key 'shots' needs a diff_method other than 'backprop' "
                    f"(allowed with shots: {[m for m in DIFF_METHODS if m not in ('backprop', 'adjoint')]})"
                )
        _check_choice("execution", self.execution, EXECUTIONS)

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def weight_shape(self) -> tuple:
        """Shape of the variational weights: ``(n_layers, n_qubits, weights_per_qubit)``."""
        return (self.n_layers, self.n_qubits, WEIGHTS_PER_QUBIT[self.ansatz])

    @property
    def n_encodings(self) -> int:
        """How many times the input is encoded (1, or n_layers with re-uploading)."""
        return self.n_layers if self.encoding == "reuploading" else 1

    def entangler_range(self, layer: int) -> int:
        """CNOT range of ``strongly_entangling`` layer ``layer`` (PennyLane's default ranges)."""
        return (layer % (self.n_qubits - 1)) + 1 if self.n_qubits > 1 else 0

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the circuit: weights (unless frozen) + input and output scaling."""
        n = self.n_layers * self.n_qubits * WEIGHTS_PER_QUBIT[self.ansatz] if self.trainable_weights else 0
        if self.input_scaling:
            n += self.n_encodings * self.n_qubits
        if self.output_scaling:
            n += self.n_outputs
        return n

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]] = None, prefix: str = "") -> "CircuitSpec":
        """Builds a spec from a plain dict, rejecting unknown keys by name.

        Args:
            config: keys are this class's field names; missing keys take the defaults.
            prefix: prepended to key names in error messages (e.g. ``"model_config.actor."``).
        """
        config = dict(config or {})
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise ValueError(f"unknown circuit key(s) {[prefix + k for k in unknown]}; allowed: {allowed}")
        try:
            return cls(**config)
        except (TypeError, ValueError) as err:
            if prefix:
                raise type(err)(str(err).replace("circuit key '", f"circuit key '{prefix}")) from None
            raise

    def to_config(self) -> dict:
        """The plain-dict form of this spec (round-trips through :meth:`from_config`)."""
        return dataclasses.asdict(self)
