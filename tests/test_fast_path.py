"""The fast torch statevector path: equal to the PennyLane QNode, chosen when it applies, cached safely.

References are real PennyLane QNodes (``QuantumLayer`` with ``execution="pennylane"``, itself checked
gate by gate in ``test_circuits.py``), evaluated in float64; the fast path runs in float32 unless
a test says otherwise. No mocks.
"""

import copy
import itertools
import pickle

import pytest
import torch

from rllib_quantum.circuits import CircuitSpec, QuantumLayer, StatevectorCircuit
from rllib_quantum.circuits.statevector import cnot_permutation, fast_path_unsupported_reason

COMBOS = list(itertools.product(("strongly_entangling", "hardware_efficient", "controlled_rotations"), ("angle", "reuploading"), "XYZ"))
F32_ATOL = 1e-5
F32_RTOL = 1e-5  # float32 rounding of gradients of size 5-10 (random weights spread over several periods)


def make_spec(n_qubits, ansatz="strongly_entangling", encoding="reuploading", rotation="X", **extra) -> CircuitSpec:
    config = dict(n_qubits=n_qubits, n_layers=2, ansatz=ansatz, encoding=encoding, rotation=rotation)
    config.update(extra)
    return CircuitSpec(**config)


def random_state(spec: CircuitSpec, seed: int) -> dict:
    """Random weights and scalings (weights spread over several periods, scalings around 1)."""
    g = torch.Generator().manual_seed(seed)
    layer = QuantumLayer(spec)
    state = {}
    for name, value in layer.state_dict().items():
        spread = 8.0 if name == "weights" else 1.0
        state[name] = torch.rand(value.shape, generator=g) * spread + (0.5 if name != "weights" else -2.0)
    return state


def pair(spec: CircuitSpec, seed: int = 0):
    """(fast float32 layer, PennyLane float64 layer) with the same random parameters."""
    state = random_state(spec, seed)
    fast = QuantumLayer(dataclass_replace(spec, execution="fast"))
    fast.load_state_dict(state)
    ref = QuantumLayer(dataclass_replace(spec, execution="pennylane")).double()
    ref.load_state_dict(state)
    assert fast.execution_path == "fast" and ref.execution_path == "pennylane"
    return fast, ref


def dataclass_replace(spec, **changes) -> CircuitSpec:
    return CircuitSpec(**{**spec.to_config(), **changes})


def inputs(spec: CircuitSpec, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.rand(batch, spec.n_qubits, generator=g) * 6 - 3


def grads(layer, x, probe):
    """Output and gradients w.r.t. inputs, weights and input_scale for the loss ``sum(out * probe)``."""
    layer.zero_grad()
    x = x.clone().requires_grad_()
    out = layer(x)
    (out * probe.to(out.dtype)).sum().backward()
    return out, x.grad, layer.weights.grad, layer.input_scale.grad


def assert_matches_pennylane(spec, batch=4, seed=0, with_grads=True, atol=F32_ATOL):
    fast, ref = pair(spec, seed)
    x = inputs(spec, batch, seed)
    if not with_grads:
        with torch.no_grad():
            torch.testing.assert_close(fast(x).double(), ref(x.double()), atol=atol, rtol=F32_RTOL)
        return
    probe = torch.randn(batch, spec.n_readouts, generator=torch.Generator().manual_seed(seed))
    got = grads(fast, x, probe)
    want = grads(ref, x.double(), probe)
    for name, a, b in zip(("output", "d/dx", "d/dweights", "d/dinput_scale"), got, want):
        if b is None and not spec.input_scaling:  # input_scale is then a buffer
            continue
        assert a.dtype == torch.float32, name
        torch.testing.assert_close(a.double(), b, atol=atol, rtol=F32_RTOL, msg=lambda m: f"{name} ({spec}): {m}")


# ---- fast == PennyLane ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_qubits", range(1, 13))
def test_forward_matches_pennylane_1_to_12_qubits(n_qubits):
    """Every ansatz x encoding x rotation, batch 4, float32 fast path vs float64 PennyLane."""
    for i, (ansatz, encoding, rotation) in enumerate(COMBOS):
        spec = make_spec(n_qubits, ansatz, encoding, rotation, n_outputs=max(1, n_qubits - i % 2))
        assert_matches_pennylane(spec, seed=i, with_grads=False)


@pytest.mark.parametrize("n_qubits", [1, 2, 3, 5, 7, 10])
def test_gradients_match_pennylane(n_qubits):
    """Outputs and gradients w.r.t. inputs, weights and input_scale, every ansatz x encoding x rotation."""
    for i, (ansatz, encoding, rotation) in enumerate(COMBOS):
        assert_matches_pennylane(make_spec(n_qubits, ansatz, encoding, rotation), seed=i)


@pytest.mark.parametrize("ansatz,encoding,rotation", COMBOS[::3] + COMBOS[1::5])
def test_gradients_match_pennylane_12_qubits(ansatz, encoding, rotation):
    assert_matches_pennylane(make_spec(12, ansatz, encoding, rotation), batch=2, seed=12)


@pytest.mark.parametrize("scaling", [(True, False), (False, True), (False, False)])
def test_scaling_options_and_deeper_circuits(scaling):
    input_scaling, output_scaling = scaling
    for n_qubits in (2, 4, 6):
        spec = make_spec(n_qubits, n_layers=5, input_scaling=input_scaling, output_scaling=output_scaling, n_outputs=2)
        assert_matches_pennylane(spec, seed=n_qubits)


@pytest.mark.parametrize("n_qubits", [2, 3, 5, 7])
def test_correlator_readouts_match_pennylane(n_qubits):
    """observables "Z+ZZ" (every <Z_i>, then every <Z_i Z_j>), with gradients, every combination."""
    for i, (ansatz, encoding, rotation) in enumerate(COMBOS):
        spec = make_spec(n_qubits, ansatz, encoding, rotation, observables="Z+ZZ", n_outputs=n_qubits - i % 2)
        assert_matches_pennylane(spec, seed=i)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("n_qubits", [1, 2, 3, 6])
def test_both_strategies_match_pennylane(dense, n_qubits):
    """The dense and factored strategies, forced, with gradients (the layer picks by size and mode)."""
    for i, (ansatz, encoding, rotation) in enumerate(COMBOS):
        observables = "Z+ZZ" if i % 2 and n_qubits > 1 else "Z"
        spec = make_spec(n_qubits, ansatz, encoding, rotation, n_layers=3, observables=observables)
        fast, ref = pair(spec, seed=i)
        x = inputs(spec, 3, i).requires_grad_()
        w = fast.weights.detach().clone().requires_grad_()
        s = fast.input_scale.detach().clone().requires_grad_()
        out = StatevectorCircuit(spec)(x, w, s, dense=dense)
        out.sum().backward()
        x_ref = x.detach().double().requires_grad_()
        ref_out = ref(x_ref) / ref.output_scale.detach()
        ref_out.sum().backward()
        torch.testing.assert_close(out.double(), ref_out, atol=F32_ATOL, rtol=F32_RTOL)
        torch.testing.assert_close(x.grad.double(), x_ref.grad, atol=F32_ATOL, rtol=F32_RTOL)
        torch.testing.assert_close(w.grad.double(), ref.weights.grad, atol=F32_ATOL, rtol=F32_RTOL)
        torch.testing.assert_close(s.grad.double(), ref.input_scale.grad, atol=F32_ATOL, rtol=F32_RTOL)


def test_float64_runs_in_complex128_and_matches_tightly():
    spec = make_spec(5, encoding="reuploading", rotation="Y", n_layers=3)
    fast, ref = pair(spec, seed=5)
    fast.double()
    x = inputs(spec, 6, 5).double()
    probe = torch.randn(6, spec.n_outputs)
    got, want = grads(fast, x, probe), grads(ref, x, probe)
    for a, b in zip(got, want):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_leading_dims_dtypes_and_output_scaling():
    layer = QuantumLayer({"n_qubits": 3, "n_layers": 2, "n_outputs": 2})
    with torch.no_grad():
        layer.output_scale.copy_(torch.tensor([2.0, -3.0]))
    x = torch.rand(2, 5, 3)
    out = layer(x)
    assert out.shape == (2, 5, 2) and out.dtype == torch.float32
    assert layer(x.double()).dtype == torch.float64
    assert layer(x.half()).dtype == torch.float16
    ref = QuantumLayer({"n_qubits": 3, "n_layers": 2, "n_outputs": 2, "execution": "pennylane"})
    ref.load_state_dict(layer.state_dict())
    torch.testing.assert_close(out, ref(x), atol=F32_ATOL, rtol=F32_RTOL)


def test_cnot_permutation_matches_gate_definition():
    # CNOT(0, 1) on 2 qubits swaps |10> and |11>; a ring on 3 qubits maps |100> -> |110> -> |111> -> |011>.
    assert cnot_permutation(2, [(0, 1)]).tolist() == [0, 1, 3, 2]
    perm = cnot_permutation(3, [(0, 1), (1, 2), (2, 0)])
    psi = torch.zeros(8)
    psi[0b100] = 1
    assert int(torch.argmax(psi[perm])) == 0b011
    assert cnot_permutation(1, []) is None


# ---- which path runs --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config,path",
    [
        ({}, "fast"),
        ({"device": "lightning.qubit", "diff_method": "adjoint"}, "fast"),
        ({"diff_method": "parameter-shift"}, "fast"),
        ({"device": "default.mixed"}, "pennylane"),
        ({"shots": 100, "diff_method": "parameter-shift"}, "pennylane"),
        ({"execution": "pennylane"}, "pennylane"),
        ({"execution": "fast", "device": "lightning.qubit", "diff_method": "adjoint"}, "fast"),
    ],
)
def test_execution_selection(config, path):
    layer = QuantumLayer({"n_qubits": 2, "n_layers": 1, **config})
    assert layer.execution_path == path
    assert f"execution_path={path!r}" in repr(layer)
    with pytest.raises(AttributeError):
        layer.execution_path = "fast"


@pytest.mark.parametrize(
    "config,words",
    [
        ({"shots": 100, "diff_method": "parameter-shift"}, ["'fast'", "shots=100", "execution='auto'"]),
        ({"device": "default.mixed"}, ["'fast'", "default.mixed", "default.qubit", "lightning.qubit"]),
    ],
)
def test_fast_refused_with_reason(config, words):
    with pytest.raises(ValueError) as info:
        QuantumLayer({"n_qubits": 2, "n_layers": 1, "execution": "fast", **config})
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    assert fast_path_unsupported_reason(CircuitSpec(n_qubits=2, **config)) is not None


def test_auto_fallback_to_default_mixed_agrees_with_fast():
    spec = make_spec(3, device="default.mixed")
    mixed = QuantumLayer(spec)
    fast = QuantumLayer(dataclass_replace(spec, device="default.qubit"))
    fast.load_state_dict(mixed.state_dict())
    x = torch.rand(3, 3)
    assert mixed.execution_path == "pennylane"
    torch.testing.assert_close(fast(x), mixed(x), atol=F32_ATOL, rtol=F32_RTOL)


# ---- the inference cache --------------------------------------------------------------------------------
def uncached(layer: QuantumLayer, x: torch.Tensor) -> torch.Tensor:
    """A fresh copy of ``layer`` (no cache), run with autograd on: the reference for cached results."""
    fresh = QuantumLayer(layer.spec)
    fresh.load_state_dict(layer.state_dict())
    return fresh(x).detach()


@pytest.mark.parametrize("n_qubits", [3, 8, 10])
@pytest.mark.parametrize("encoding", ["angle", "reuploading"])
def test_cached_inference_equals_uncached(n_qubits, encoding):
    layer = QuantumLayer(make_spec(n_qubits, encoding=encoding, rotation="Y", n_layers=3))
    for batch in (1, 40):  # small batches use dense matrices up to 8 qubits, larger ones Kronecker blocks
        x = inputs(layer.spec, batch, batch)
        with torch.no_grad():
            first = layer(x)
            cache = layer._weights_cache
            second = layer(x)
        assert layer._weights_cache is cache, "unchanged weights must reuse the cache"
        with torch.inference_mode():
            third = layer(x)
        want = uncached(layer, x)
        for got in (first, second, third):
            torch.testing.assert_close(got, want, atol=2e-6, rtol=0)


def test_cache_used_when_nothing_requires_grad_and_not_when_training():
    layer = QuantumLayer(make_spec(4))
    x = torch.rand(2, 4)
    layer(x).sum().backward()
    assert layer._weights_cache is None, "training forward must not build a cache"
    layer.requires_grad_(False)
    out = layer(x)  # grad mode on, but nothing requires grad
    assert layer._weights_cache is not None and not out.requires_grad


def test_frozen_weights_still_give_input_gradients():
    layer = QuantumLayer(make_spec(5, n_layers=3))
    layer.weights.requires_grad_(False)
    x = torch.rand(3, 5, requires_grad=True)
    layer(x).sum().backward()
    assert layer._weights_cache is not None
    x_ref = x.detach().clone().requires_grad_()
    fresh = QuantumLayer(layer.spec)
    fresh.load_state_dict(layer.state_dict())
    fresh(x_ref).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=2e-6, rtol=0)
    torch.testing.assert_close(layer.input_scale.grad, fresh.input_scale.grad, atol=2e-6, rtol=0)


@pytest.fixture(params=[4, 10], ids=["dense-4q", "factored-10q"])
def cached_layer(request):
    """A fast layer whose cache is filled, with the no-grad output it gave."""
    layer = QuantumLayer(make_spec(request.param, encoding="angle", n_layers=2))
    x = inputs(layer.spec, 1, 0)
    with torch.no_grad():
        before = layer(x)
    assert layer._weights_cache is not None
    return layer, x, before


def assert_cache_follows(layer, x, before):
    with torch.no_grad():
        after = layer(x)
    assert not torch.allclose(after, before), "the weights changed, the output must too"
    torch.testing.assert_close(after, uncached(layer, x), atol=2e-6, rtol=0)


def test_cache_invalidated_by_optimizer_step(cached_layer):
    layer, x, before = cached_layer
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(torch.rand(8, layer.spec.n_qubits)).pow(2).sum().backward()
    opt.step()
    assert_cache_follows(layer, x, before)


def test_cache_invalidated_by_load_state_dict(cached_layer):
    layer, x, before = cached_layer
    other = QuantumLayer(layer.spec)
    layer.load_state_dict(other.state_dict())
    assert_cache_follows(layer, x, before)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), other(x))


def test_cache_invalidated_by_in_place_copy(cached_layer):
    layer, x, before = cached_layer
    with torch.no_grad():
        layer.weights.copy_(layer.weights * 0.5 + 0.3)
    assert_cache_follows(layer, x, before)


def test_cache_invalidated_by_writes_that_bypass_the_version_counter(cached_layer):
    layer, x, before = cached_layer
    layer.weights.data.copy_(layer.weights.data + 0.7)  # .data does not bump _version
    assert_cache_follows(layer, x, before)
    before = layer(x).detach()
    layer.weights.data = layer.weights.data - 0.4  # a new storage
    assert_cache_follows(layer, x, before)


def test_cache_follows_dtype_and_parameter_averaging(cached_layer):
    layer, x, before = cached_layer
    twin = copy.deepcopy(layer)
    with torch.no_grad():
        twin.weights.add_(1.0)
        for p, q in zip(layer.parameters(), twin.parameters()):  # averaging, as a callback would
            p.copy_((p + q) / 2)
    assert_cache_follows(layer, x, before)
    layer.double()
    with torch.no_grad():
        out = layer(x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, uncached(layer, x.double()), atol=1e-12, rtol=0)


def test_pickled_layer_drops_cache_and_agrees(cached_layer):
    layer, x, before = cached_layer
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._weights_cache is None
    with torch.no_grad():
        torch.testing.assert_close(clone(x), before)
