"""The circuit itself, written with PennyLane operations (the definition every other path matches).

For a spec with ``n`` qubits and ``L`` layers, on inputs ``x`` (``n`` features, already multiplied
by the input scaling ``s``), weights ``w`` of shape ``spec.weight_shape``::

    for l in 0 .. L-1:
        if l == 0 or encoding == "reuploading":
            R{rotation}(s[e, i] * x[i]) on wire i, for i = 0 .. n-1      (e = encoding index)
        ansatz layer l
    return <Z_0>, ..., <Z_{n_outputs-1}>
           then, for observables "Z+ZZ", <Z_i Z_j> for every pair i < j < n_outputs

``strongly_entangling`` layer ``l`` (PennyLane ``StronglyEntanglingLayers``, one layer at a time):
``Rot(w[l,i,0], w[l,i,1], w[l,i,2])`` on every wire ``i``, then, if ``n > 1``,
``CNOT(i, (i + r) mod n)`` for ``i = 0 .. n-1`` with ``r = (l mod (n-1)) + 1``.

``controlled_rotations`` layer ``l``: ``Rot(w[l,i,0], w[l,i,1], w[l,i,2])`` on every wire ``i``,
then, if ``n > 1``, ``CRZ(w[l,i,3])`` with control ``i`` and target ``(i + r) mod n`` for
``i = 0 .. n-1`` (``r`` as above). ``QuantumLayer`` starts every ``w[l,i,3]`` at 0.

``hardware_efficient`` layer ``l``: ``RY(w[l,i,0])`` then ``RZ(w[l,i,1])`` on every wire ``i``,
then ``CNOT(0, 1)`` if ``n == 2``, or the ring ``CNOT(i, (i + 1) mod n)`` for ``i = 0 .. n-1`` if
``n >= 3``.
"""

from __future__ import annotations

import pennylane as qml

from rllib_quantum.circuits.spec import CircuitSpec


def encode(spec: CircuitSpec, scaled_inputs) -> None:
    """Angle-encodes ``scaled_inputs[..., i]`` on wire ``i`` (broadcasts over leading batch dims)."""
    qml.AngleEmbedding(scaled_inputs, wires=range(spec.n_qubits), rotation=spec.rotation)


def ansatz_layer(spec: CircuitSpec, weights, layer: int) -> None:
    """Applies variational layer ``layer`` of ``spec.ansatz`` with ``weights[layer]``."""
    n = spec.n_qubits
    if spec.ansatz == "strongly_entangling":
        qml.StronglyEntanglingLayers(
            weights[layer : layer + 1], wires=range(n), ranges=[spec.entangler_range(layer)] if n > 1 else None
        )
        return
    if spec.ansatz == "controlled_rotations":
        for i in range(n):
            qml.Rot(weights[layer, i, 0], weights[layer, i, 1], weights[layer, i, 2], wires=i)
        if n > 1:
            r = spec.entangler_range(layer)
            for i in range(n):
                qml.CRZ(weights[layer, i, 3], wires=[i, (i + r) % n])
        return
    for i in range(n):
        qml.RY(weights[layer, i, 0], wires=i)
        qml.RZ(weights[layer, i, 1], wires=i)
    if n == 2:
        qml.CNOT(wires=[0, 1])
    elif n >= 3:
        for i in range(n):
            qml.CNOT(wires=[i, (i + 1) % n])


def circuit(spec: CircuitSpec, inputs, weights, input_scale):
    """The quantum function: encoding and ansatz layers, then the read-outs ``spec.readout_wires``.

    Args:
        spec: what to build.
        inputs: ``(..., n_qubits)`` features (a leading batch dim is broadcast by PennyLane).
        weights: ``spec.weight_shape`` variational angles.
        input_scale: ``(spec.n_encodings, n_qubits)`` factors on the inputs (ones if not trained).

    Returns:
        list of ``spec.n_readouts`` expectation values.
    """
    for layer in range(spec.n_layers):
        if layer == 0 or spec.encoding == "reuploading":
            e = layer if spec.encoding == "reuploading" else 0
            encode(spec, inputs * input_scale[e])
        ansatz_layer(spec, weights, layer)
    return [qml.expval(qml.prod(*(qml.PauliZ(i) for i in wires))) for wires in spec.readout_wires]


def build_qnode(spec: CircuitSpec) -> qml.QNode:
    """A torch-interface QNode of ``circuit(spec, ...)`` on ``spec.device`` with ``spec.diff_method``.

    The QNode takes ``(inputs, weights, input_scale)``. Build it on the process that runs it:
    Lightning devices cannot be pickled.

    Example:
        >>> import torch
        >>> spec = CircuitSpec(n_qubits=2, n_layers=1)
        >>> qnode = build_qnode(spec)
        >>> out = qnode(torch.zeros(3, 2), torch.zeros(spec.weight_shape), torch.ones(1, 2))
        >>> [float(o[0]) for o in out]
        [1.0, 1.0]
    """
    device = qml.device(spec.device, wires=spec.n_qubits)

    def qfunc(inputs, weights, input_scale):
        return circuit(spec, inputs, weights, input_scale)

    qnode = qml.QNode(qfunc, device, interface="torch", diff_method=spec.diff_method)
    if spec.shots is not None:
        qnode = qml.set_shots(qnode, shots=spec.shots)
    return qnode


def draw(spec: CircuitSpec) -> str:
    """Text diagram of the circuit (inputs shown as symbols, weights as zeros)."""
    import torch

    qnode = build_qnode(spec)
    x = torch.zeros(spec.n_qubits)
    return qml.draw(qnode, level="device", decimals=None, max_length=200, show_matrices=False)(
        x, torch.zeros(spec.weight_shape), torch.ones(spec.n_encodings, spec.n_qubits)
    )
