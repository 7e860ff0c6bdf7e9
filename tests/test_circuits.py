"""QuantumLayer's PennyLane path against a reference circuit written here from the documented gates.

The reference QNode below is built from explicit ``qml.RX/RY/RZ/Rot/CNOT`` gates following the
written definition (``rllib_quantum/circuits/templates.py`` module docstring), not from our
templates, so a template mistake cannot hide in both. Real PennyLane, no mocks.
"""

import pickle

import pennylane as qml
import pytest
import torch

from rllib_quantum.circuits import CircuitSpec, QuantumLayer

ENCODING_GATES = {"X": qml.RX, "Y": qml.RY, "Z": qml.RZ}


def reference_qnode(spec: CircuitSpec, device: str = "default.qubit", diff_method: str = "backprop"):
    """The documented circuit, gate by gate: ``f(x (B, n), weights, input_scale) -> (B, n_outputs)``."""
    n, gate = spec.n_qubits, ENCODING_GATES[spec.rotation]

    @qml.qnode(qml.device(device, wires=n), interface="torch", diff_method=diff_method)
    def circuit(x, w, s):
        for layer in range(spec.n_layers):
            if layer == 0 or spec.encoding == "reuploading":
                e = layer if spec.encoding == "reuploading" else 0
                for i in range(n):
                    gate(s[e, i] * x[..., i], wires=i)
            if spec.ansatz == "strongly_entangling":
                for i in range(n):
                    qml.Rot(w[layer, i, 0], w[layer, i, 1], w[layer, i, 2], wires=i)
                if n > 1:
                    r = (layer % (n - 1)) + 1
                    for i in range(n):
                        qml.CNOT(wires=[i, (i + r) % n])
            else:
                for i in range(n):
                    qml.RY(w[layer, i, 0], wires=i)
                    qml.RZ(w[layer, i, 1], wires=i)
                if n == 2:
                    qml.CNOT(wires=[0, 1])
                elif n >= 3:
                    for i in range(n):
                        qml.CNOT(wires=[i, (i + 1) % n])
        return [qml.expval(qml.PauliZ(i)) for i in range(spec.n_outputs)]

    def run(x, w, s):
        return torch.stack(list(circuit(x, w, s)), dim=-1).reshape(x.shape[0], spec.n_outputs)

    return run


def randomize(layer: QuantumLayer, seed: int) -> QuantumLayer:
    """Random weights and (trainable) scalings, so the test sees more than the initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 3 - 0.5)
    return layer


def compare_to_reference(spec: CircuitSpec, batch: int = 3, seed: int = 0, atol: float = 1e-9):
    """Layer (float64) vs the reference QNode: outputs and gradients w.r.t. inputs and every parameter."""
    layer = randomize(QuantumLayer(spec), seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(batch, spec.n_qubits, generator=g, dtype=torch.float64) * 4 - 2).requires_grad_()
    probe = torch.randn(batch, spec.n_outputs, generator=g, dtype=torch.float64)

    out = layer(x)
    (out * probe).sum().backward()

    w = layer.weights.detach().clone().requires_grad_()
    s = layer.input_scale.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    ref = reference_qnode(spec)(x_ref, w, s)
    if spec.output_scaling:
        ref = ref * layer.output_scale.detach()
    (ref * probe).sum().backward()

    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=atol, rtol=0)
    torch.testing.assert_close(layer.weights.grad, w.grad, atol=atol, rtol=0)
    if spec.input_scaling:
        torch.testing.assert_close(layer.input_scale.grad, s.grad, atol=atol, rtol=0)
    if spec.output_scaling:
        expected = (ref.detach() / layer.output_scale.detach() * probe).sum(0)
        torch.testing.assert_close(layer.output_scale.grad, expected, atol=atol, rtol=0)


# ---- the PennyLane path equals the written definition ------------------------------------------------
CASES = [
    (ansatz, encoding, n_qubits, scaling)
    for ansatz in ("strongly_entangling", "hardware_efficient")
    for encoding in ("angle", "reuploading")
    for n_qubits in (1, 2, 3, 5)
    for scaling in (True, False)
]


@pytest.mark.parametrize("ansatz,encoding,n_qubits,scaling", CASES)
def test_pennylane_path_matches_reference(ansatz, encoding, n_qubits, scaling):
    rotation = "XYZ"[(n_qubits + len(ansatz) + len(encoding)) % 3]  # every rotation across the cases
    spec = CircuitSpec(
        n_qubits=n_qubits,
        n_layers=3,
        ansatz=ansatz,
        encoding=encoding,
        rotation=rotation,
        n_outputs=max(1, n_qubits - 1),
        input_scaling=scaling,
        output_scaling=scaling,
        execution="pennylane",
    )
    compare_to_reference(spec, seed=n_qubits)


@pytest.mark.parametrize("rotation", ["X", "Y", "Z"])
def test_every_rotation_matches_reference(rotation):
    spec = CircuitSpec(n_qubits=3, n_layers=2, rotation=rotation, execution="pennylane")
    compare_to_reference(spec, seed=7)


def test_lightning_adjoint_runs_and_matches_reference():
    spec = CircuitSpec(n_qubits=3, n_layers=2, device="lightning.qubit", diff_method="adjoint", execution="pennylane")
    layer = QuantumLayer(spec)
    assert layer.execution_path == "pennylane"
    compare_to_reference(spec, batch=2, seed=3, atol=1e-7)  # Lightning differs from default.qubit by ~1e-8


def test_forward_shapes_and_dtype():
    layer = QuantumLayer({"n_qubits": 3, "n_layers": 1, "n_outputs": 2, "execution": "pennylane"})
    out = layer(torch.rand(2, 4, 3))
    assert out.shape == (2, 4, 2) and out.dtype == torch.float32
    single = layer(torch.rand(1, 3))
    assert single.shape == (1, 2)
    with pytest.raises(ValueError, match="n_qubits=3"):
        layer(torch.rand(5, 4))


# ---- the spec validates up front, naming what was given and what is allowed ----------------------
@pytest.mark.parametrize(
    "config,error,words",
    [
        ({"n_qubits": 0}, ValueError, ["'n_qubits'", ">= 1", "0"]),
        ({"n_layers": 0}, ValueError, ["'n_layers'", ">= 1"]),
        ({"ansatz": "qaoa"}, ValueError, ["'ansatz'", "qaoa", "strongly_entangling", "hardware_efficient"]),
        ({"encoding": "amplitude"}, ValueError, ["'encoding'", "amplitude", "angle", "reuploading"]),
        ({"rotation": "W"}, ValueError, ["'rotation'", "'W'", "'X'"]),
        ({"device": "no.such.device"}, ValueError, ["'device'", "no.such.device", "default.qubit"]),
        ({"diff_method": "magic"}, ValueError, ["'diff_method'", "magic", "backprop"]),
        ({"execution": "gpu"}, ValueError, ["'execution'", "gpu", "auto", "fast"]),
        ({"n_qubits": "4"}, TypeError, ["'n_qubits'", "'4'", "str"]),
        ({"n_qubits": 2.0}, TypeError, ["'n_qubits'", "float"]),
        ({"n_qubits": True}, TypeError, ["'n_qubits'", "bool"]),
        ({"input_scaling": "yes"}, TypeError, ["'input_scaling'", "'yes'"]),
        ({"device": 3}, TypeError, ["'device'", "3"]),
        ({"n_qubits": 2, "n_outputs": 3}, ValueError, ["'n_outputs'", "<= n_qubits", "3"]),
        ({"shots": 100}, ValueError, ["'shots'", "backprop", "parameter-shift"]),
        ({"shots": 0, "diff_method": "parameter-shift"}, ValueError, ["'shots'", ">= 1"]),
        ({"n_qbits": 4}, ValueError, ["n_qbits", "n_qubits", "allowed"]),
    ],
)
def test_spec_validation_messages(config, error, words):
    with pytest.raises(error) as info:
        CircuitSpec.from_config(config)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_unknown_keys_named_with_prefix_and_layer_rejects_non_specs():
    with pytest.raises(ValueError, match=r"model_config\.actor\.bogus.*allowed: \['n_qubits'"):
        CircuitSpec.from_config({"bogus": 1}, prefix="model_config.actor.")
    with pytest.raises(ValueError, match="unknown circuit key"):
        QuantumLayer({"n_qubits": 2, "layers": 3})
    with pytest.raises(TypeError, match="CircuitSpec or a dict.*list"):
        QuantumLayer([2, 3])


def test_spec_round_trips_and_sizes():
    spec = CircuitSpec.from_config({"n_qubits": 4, "n_layers": 3, "ansatz": "hardware_efficient", "encoding": "angle"})
    assert CircuitSpec.from_config(spec.to_config()) == spec
    assert spec.weight_shape == (3, 4, 2)
    assert spec.n_parameters == 3 * 4 * 2 + 1 * 4 + 4
    assert sum(p.numel() for p in QuantumLayer(spec).parameters()) == spec.n_parameters


# ---- pickling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "device,diff_method,execution",
    [
        ("default.qubit", "backprop", "pennylane"),
        ("lightning.qubit", "adjoint", "pennylane"),
        ("default.qubit", "backprop", "auto"),
    ],
)
def test_layer_pickles_after_use(device, diff_method, execution):
    spec = {"n_qubits": 2, "n_layers": 2, "device": device, "diff_method": diff_method, "execution": execution}
    layer = QuantumLayer(spec)
    x = torch.rand(3, 2)
    before = layer(x)  # builds the QNode (a Lightning device cannot be pickled) or the fast cache
    with torch.no_grad():
        layer(x)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._qnode is None and clone._weights_cache is None
    torch.testing.assert_close(clone(x), before)
    assert clone.execution_path == layer.execution_path
