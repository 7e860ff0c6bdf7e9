"""Variational quantum circuits (PennyLane) as torch modules. Knows nothing of RLlib."""

from rllib_quantum.circuits.layer import QuantumLayer
from rllib_quantum.circuits.spec import (
    ANSATZE,
    DIFF_METHODS,
    ENCODINGS,
    EXECUTIONS,
    MAX_QUBITS,
    OBSERVABLES,
    ROTATIONS,
    CircuitSpec,
)
from rllib_quantum.circuits.statevector import (
    FAST_DEVICES,
    StatevectorCircuit,
    fast_path_unsupported_reason,
    simulate,
)
from rllib_quantum.circuits.stacking import stack_reason, stacked_forward
from rllib_quantum.circuits.templates import build_qnode, circuit, draw

__all__ = [
    "ANSATZE",
    "DIFF_METHODS",
    "ENCODINGS",
    "EXECUTIONS",
    "FAST_DEVICES",
    "MAX_QUBITS",
    "OBSERVABLES",
    "ROTATIONS",
    "CircuitSpec",
    "QuantumLayer",
    "StatevectorCircuit",
    "build_qnode",
    "circuit",
    "draw",
    "fast_path_unsupported_reason",
    "simulate",
    "stack_reason",
    "stacked_forward",
]
