"""QuantumLayer's PennyLane path against a reference circuit written here from the documented gates.

The reference QNode below is built from explicit ``qml.RX/RY/RZ/Rot/CNOT`` gates following the
written definition (``rllib_quantum/circuits/templates.py`` module docstring), not from our
templates, so a template mistake cannot hide in both. Real PennyLane, no mocks.
"""

import math
import pickle

import pennylane as qml
import pytest
import torch

from rllib_quantum.circuits import MAX_QUBITS, CircuitSpec, QuantumLayer
from rllib_quantum.errors import ConfigError

ENCODING_GATES = {"X": qml.RX, "Y": qml.RY, "Z": qml.RZ}


def reference_qnode(spec: CircuitSpec, device: str = "default.qubit", diff_method: str = "backprop"):
    """The documented circuit, gate by gate: ``f(x (B, n), weights, input_scale) -> (B, n_readouts)``."""
    n, gate = spec.n_qubits, ENCODING_GATES[spec.rotation]

    @qml.qnode(qml.device(device, wires=n), interface="torch", diff_method=diff_method)
    def circuit(x, w, s):
        for layer in range(spec.n_layers):
            if layer == 0 or spec.encoding == "reuploading":
                e = layer if spec.encoding == "reuploading" else 0
                for i in range(n):
                    gate(s[e, i] * x[..., i], wires=i)
            if spec.ansatz in ("strongly_entangling", "controlled_rotations"):
                for i in range(n):
                    qml.Rot(w[layer, i, 0], w[layer, i, 1], w[layer, i, 2], wires=i)
                if n > 1:
                    r = (layer % (n - 1)) + 1
                    for i in range(n):
                        if spec.ansatz == "strongly_entangling":
                            qml.CNOT(wires=[i, (i + r) % n])
                        else:
                            qml.CRZ(w[layer, i, 3], wires=[i, (i + r) % n])
            else:
                for i in range(n):
                    qml.RY(w[layer, i, 0], wires=i)
                    qml.RZ(w[layer, i, 1], wires=i)
                if n == 2:
                    qml.CNOT(wires=[0, 1])
                elif n >= 3:
                    for i in range(n):
                        qml.CNOT(wires=[i, (i + 1) % n])
        singles = [qml.expval(qml.PauliZ(i)) for i in range(spec.n_outputs)]
        if spec.observables == "Z":
            return singles
        pairs = [
            qml.expval(qml.PauliZ(i) @ qml.PauliZ(j)) for i in range(spec.n_outputs) for j in range(i + 1, spec.n_outputs)
        ]
        return singles + pairs

    def run(x, w, s):
        return torch.stack(list(circuit(x, w, s)), dim=-1).reshape(x.shape[0], spec.n_readouts)

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
    probe = torch.randn(batch, spec.n_readouts, generator=g, dtype=torch.float64)

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
    for ansatz in ("strongly_entangling", "hardware_efficient", "controlled_rotations")
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


@pytest.mark.parametrize("ansatz,n_qubits,n_outputs", [("strongly_entangling", 5, 5), ("hardware_efficient", 4, 3), ("strongly_entangling", 2, 2)])
def test_correlator_readouts_match_reference(ansatz, n_qubits, n_outputs):
    """observables "Z+ZZ": every <Z_i>, then <Z_i Z_j> for each pair of read-out wires, in that order."""
    spec = CircuitSpec(
        n_qubits=n_qubits, n_layers=2, ansatz=ansatz, n_outputs=n_outputs, observables="Z+ZZ", execution="pennylane"
    )
    assert spec.n_readouts == n_outputs * (n_outputs + 1) // 2
    compare_to_reference(spec, seed=n_qubits)


@pytest.mark.parametrize("execution", ["pennylane", "fast"])
def test_correlators_on_an_entangled_state_by_hand(execution):
    """Exact small case: RX(a) x RX(b), then CNOT(0, 1) (hardware_efficient, zero weights).

    CNOT(0, 1) maps Z_0 -> Z_0, Z_1 -> Z_0 Z_1 and Z_0 Z_1 -> Z_1 (conjugation), so the read-outs are
    <Z_0> = cos a, <Z_1> = cos a cos b and <Z_0 Z_1> = cos b: the correlator is not <Z_0><Z_1>.
    """
    spec = CircuitSpec(
        n_qubits=2, n_layers=1, ansatz="hardware_efficient", encoding="angle", observables="Z+ZZ",
        input_scaling=False, output_scaling=False, execution=execution,
    )
    layer = QuantumLayer(spec).double()
    with torch.no_grad():
        layer.weights.zero_()
    x = torch.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=torch.float64)
    a, b = x[:, 0], x[:, 1]
    want = torch.stack([torch.cos(a), torch.cos(a) * torch.cos(b), torch.cos(b)], dim=-1)
    torch.testing.assert_close(layer(x), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("execution", ["pennylane", "fast"])
def test_controlled_rotations_start_as_a_product_of_one_wire_circuits(execution):
    """Their CRZ angles start at 0: each <Z_i> then depends on input i alone (exact: no gate couples
    two wires). Once the CRZs turn, the other inputs matter."""
    spec = CircuitSpec(n_qubits=4, n_layers=3, ansatz="controlled_rotations", execution=execution)
    torch.manual_seed(3)
    layer = QuantumLayer(spec).double()
    assert torch.all(layer.weights[..., 3] == 0) and torch.all(layer.weights[..., :3] != 0)
    x = torch.rand(6, 4, dtype=torch.float64) * 2 - 1
    for wire in range(4):
        moved = x.clone()
        moved[:, [i for i in range(4) if i != wire]] = torch.rand(6, 3, dtype=torch.float64) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(layer(moved)[:, wire], layer(x)[:, wire], atol=1e-9, rtol=0)
    with torch.no_grad():
        layer.weights[..., 3] = 1.0
        moved = x.clone()
        moved[:, 1:] = -x[:, 1:]
        assert (layer(moved)[:, 0] - layer(x)[:, 0]).abs().max() > 1e-3


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
    "config,key,words",
    [
        ({"n_qubits": 0}, "n_qubits", ["must be an int in 1..24", "got 0"]),
        ({"n_layers": 0}, "n_layers", [">= 1"]),
        ({"ansatz": "qaoa"}, "ansatz", ["qaoa", "strongly_entangling", "hardware_efficient", "controlled_rotations"]),
        ({"encoding": "amplitude"}, "encoding", ["amplitude", "angle", "reuploading"]),
        ({"rotation": "W"}, "rotation", ["'W'", "'X'"]),
        ({"observables": "XX"}, "observables", ["'XX'", "'Z'", "'Z+ZZ'"]),
        ({"device": "no.such.device"}, "device", ["no.such.device", "default.qubit"]),
        ({"diff_method": "magic"}, "diff_method", ["magic", "backprop"]),
        ({"execution": "gpu"}, "execution", ["gpu", "auto", "fast"]),
        ({"n_qubits": "4"}, "n_qubits", ["'4'", "(str)"]),
        ({"n_qubits": 2.0}, "n_qubits", ["float"]),
        ({"n_qubits": True}, "n_qubits", ["bool"]),
        ({"input_scaling": "yes"}, "input_scaling", ["true or false", "'yes'"]),
        ({"output_scale_init": float("inf")}, "output_scale_init", ["finite number", "inf"]),
        ({"weight_init_std": 0}, "weight_init_std", ["null (uniform in [0, 2 pi))", "> 0", "got 0"]),
        ({"weight_init_std": -0.1}, "weight_init_std", ["> 0", "-0.1"]),
        ({"weight_init_std": "small"}, "weight_init_std", ["'small'", "(str)"]),
        ({"weight_init_std": True}, "weight_init_std", ["bool"]),
        ({"device": 3}, "device", ["PennyLane device name", "3"]),
        ({"n_qubits": 2, "n_outputs": 3}, "n_outputs", ["<= n_qubits", "got 3"]),
        ({"shots": 100}, "shots", ["backprop", "parameter-shift"]),
        ({"shots": 0, "diff_method": "parameter-shift"}, "shots", [">= 1"]),
        ({"n_qbits": 4}, "", ["unknown key(s) ['n_qbits']", "allowed: ['n_qubits'"]),
    ],
)
def test_spec_validation_messages(config, key, words):
    with pytest.raises(ConfigError) as info:
        CircuitSpec.from_config(config)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, TypeError)  # code catching either keeps working
    assert err.key == key
    assert str(err).startswith(f"{key}: " if key else "unknown key(s)")
    for word in words:
        assert word in str(err), f"{word!r} not in {err}"


def test_numpy_integers_are_accepted_as_ints():
    """``np.arange`` loops and numpy configs give numpy ints: accepted and stored as Python ints;
    numpy bools are not ints."""
    import numpy as np

    spec = CircuitSpec.from_config({"n_qubits": np.int64(4), "n_layers": np.int32(2), "n_outputs": np.uint8(3)})
    assert (spec.n_qubits, spec.n_layers, spec.n_outputs) == (4, 2, 3)
    assert all(type(v) is int for v in (spec.n_qubits, spec.n_layers, spec.n_outputs))
    with pytest.raises(ConfigError, match=r"^n_layers: must be an int >= 1, got np.True_"):
        CircuitSpec.from_config({"n_layers": np.bool_(True)})


def test_weight_init_uniform_by_default_normal_with_weight_init_std():
    torch.manual_seed(0)
    uniform = QuantumLayer({"n_qubits": 5, "n_layers": 40}).weights.detach()
    assert uniform.min() >= 0 and uniform.max() < 2 * math.pi and uniform.mean() > 2.5  # U[0, 2 pi): mean pi
    torch.manual_seed(0)
    small = QuantumLayer({"n_qubits": 5, "n_layers": 40, "weight_init_std": 0.1}).weights.detach()
    assert small.shape == uniform.shape
    assert abs(small.mean()) < 0.02 and 0.09 < small.std() < 0.11  # N(0, 0.1^2), 600 draws
    # near-identity rotations: the circuit is close to its encoding and entanglers alone
    spec = CircuitSpec.from_config({"n_qubits": 3, "n_layers": 2, "weight_init_std": 1e-6})
    x = torch.rand(4, 3)
    assert torch.allclose(QuantumLayer(spec)(x), QuantumLayer(spec)(x), atol=1e-4)


def test_prefix_becomes_the_key_path_and_layer_rejects_non_specs():
    with pytest.raises(ConfigError, match=r"^model_config\.actor: unknown key\(s\) \['bogus'\]; allowed: \['n_qubits'") as info:
        CircuitSpec.from_config({"bogus": 1}, prefix="model_config.actor.")  # a trailing dot is tolerated
    assert info.value.key == "model_config.actor"
    with pytest.raises(ConfigError, match=r"^circuit\.n_qubits: must be an int in 1\.\.24, got 0 \(int\)$") as info:
        CircuitSpec.from_config({"n_qubits": 0}, prefix="circuit")
    assert info.value.key == "circuit.n_qubits" and info.value.problem == "must be an int in 1..24, got 0 (int)"
    with pytest.raises(ConfigError, match=r"^circuit: must be a mapping of circuit keys, got \[4\] \(list\)") as info:
        CircuitSpec.from_config([4], prefix="circuit")
    assert info.value.key == "circuit"
    with pytest.raises(ConfigError, match=r"^unknown key\(s\) \['layers'\]") as info:
        QuantumLayer({"n_qubits": 2, "layers": 3})
    assert info.value.key == ""
    with pytest.raises(ConfigError, match=r"^spec: must be a CircuitSpec or a dict of its fields, got list") as info:
        QuantumLayer([2, 3])
    assert info.value.key == "spec"
    with pytest.raises(ConfigError, match=r"^execution: 'fast' cannot run this circuit: device='default.mixed'") as info:
        QuantumLayer({"n_qubits": 2, "execution": "fast", "device": "default.mixed"})
    assert info.value.key == "execution"


@pytest.mark.parametrize("n_qubits, memory", [(25, "0.25 GiB"), (40, "8 TiB"), (10000, "2**10003 bytes (2**9963 TiB)")])
def test_qubit_limit_names_the_memory_a_statevector_would_need(n_qubits, memory):
    assert MAX_QUBITS == 24
    CircuitSpec(n_qubits=MAX_QUBITS, n_layers=1)  # the limit itself is accepted (nothing is allocated)
    with pytest.raises(ConfigError) as info:  # no OverflowError, however large
        CircuitSpec.from_config({"n_qubits": n_qubits}, prefix="model_config.circuit")
    err = info.value
    assert err.key == "model_config.circuit.n_qubits"
    assert f"must be an int in 1..24, got {n_qubits} (a statevector of {n_qubits} qubits needs 2**{n_qubits}" in str(err)
    assert f"= {memory} per sample" in str(err) and "MAX_QUBITS" in str(err)


def test_config_errors_pickle_with_key_and_message():
    with pytest.raises(ConfigError) as info:
        CircuitSpec.from_config({"ansatz": "qaoa"}, prefix="model_config.circuit")
    for err in (info.value, info.value.in_file("configs/x.yaml")):
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is ConfigError
        assert (clone.key, clone.problem, clone.source, str(clone)) == (err.key, err.problem, err.source, str(err))
    assert str(clone).startswith("configs/x.yaml: model_config.circuit.ansatz: must be one of")


def test_spec_round_trips_and_sizes():
    spec = CircuitSpec.from_config({"n_qubits": 4, "n_layers": 3, "ansatz": "hardware_efficient", "encoding": "angle"})
    assert CircuitSpec.from_config(spec.to_config()) == spec
    assert spec.weight_shape == (3, 4, 2)
    assert spec.n_parameters == 3 * 4 * 2 + 1 * 4 + 4
    assert sum(p.numel() for p in QuantumLayer(spec).parameters()) == spec.n_parameters
    crz = CircuitSpec(n_qubits=4, n_layers=3, ansatz="controlled_rotations")
    assert crz.weight_shape == (3, 4, 4)  # Rot angles + one CRZ angle per wire and layer
    assert sum(p.numel() for p in QuantumLayer(crz).parameters()) == crz.n_parameters == 3 * 4 * 4 + 3 * 4 + 4
    zz = CircuitSpec(n_qubits=4, n_layers=3, observables="Z+ZZ", n_outputs=3)
    assert CircuitSpec.from_config(zz.to_config()) == zz
    assert zz.readout_wires == ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2)) and zz.n_readouts == 6
    assert zz.n_parameters == 3 * 4 * 3 + 3 * 4 + 6  # one output factor per read-out
    assert sum(p.numel() for p in QuantumLayer(zz).parameters()) == zz.n_parameters


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
