"""Agent-batched execution: stacked circuit calls equal per-module ones, in forward passes, gradients
and whole PPO updates, with each module keeping its own parameters and optimizer state."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.circuits import QuantumLayer, stack_reason, stacked_forward
from rllib_quantum.config import load_experiment
from rllib_quantum.modules import QuantumPPORLModule, StackedQuantumMultiRLModule
from tests._tiny import ADAM, tiny

FEATURES = "configs/quantum_independent_pong_features.yaml"
SPECS = [
    {"n_qubits": 5, "n_layers": 4, "encoding": "reuploading", "output_scale_init": 3.0},  # the pong config's circuit
    {"n_qubits": 3, "n_layers": 2, "ansatz": "hardware_efficient", "rotation": "Y"},
    {"n_qubits": 4, "n_layers": 3, "rotation": "Z", "encoding": "reuploading", "output_scaling": True},
    {"n_qubits": 2, "n_layers": 1, "n_outputs": 1},
    {"n_qubits": 5, "n_layers": 2, "observables": "Z+ZZ"},  # 15 read-outs
    {"n_qubits": 4, "n_layers": 3, "ansatz": "controlled_rotations"},
]


def _layers(spec, count, seed=0):
    torch.manual_seed(seed)
    return [QuantumLayer(spec) for _ in range(count)]


@pytest.mark.parametrize("spec", SPECS)
def test_stacked_forward_and_gradients_equal_per_layer(spec):
    layers = _layers(spec, 3)
    x = torch.rand(3, 7, spec["n_qubits"]) * 2 - 1
    assert stack_reason(layers, 7) is None
    stacked = stacked_forward(layers, x)
    stacked.square().sum().backward()
    got = {n: [p.grad.clone() for p in (l.weights, l.input_scale)] for n, l in enumerate(layers)}
    for layer in layers:
        layer.zero_grad()
    reference = torch.stack([layer(xm) for layer, xm in zip(layers, x)])
    reference.square().sum().backward()
    torch.testing.assert_close(stacked, reference, atol=2e-6, rtol=1e-5)
    for n, layer in enumerate(layers):
        torch.testing.assert_close(got[n][0], layer.weights.grad, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(got[n][1], layer.input_scale.grad, atol=2e-5, rtol=1e-4)


def test_stacked_forward_without_autograd_uses_each_layers_cache():
    layers = _layers(SPECS[0], 2)
    x = torch.rand(2, 4, 5)
    with torch.no_grad():
        first = stacked_forward(layers, x)
        keys = [layer._weights_cache.key for layer in layers]
        torch.testing.assert_close(first, torch.stack([l(xm) for l, xm in zip(layers, x)]), atol=2e-6, rtol=1e-5)
        layers[1].weights.add_(0.5)  # an optimizer step on one module: its cache is rebuilt, not the other's
        second = stacked_forward(layers, x)
    assert layers[0]._weights_cache.key == keys[0] and layers[1]._weights_cache.key != keys[1]
    torch.testing.assert_close(second[0], first[0])
    assert not torch.allclose(second[1], first[1])
    with torch.no_grad():  # the stacked operators are reused while no layer changed, rebuilt when one did
        stacked = layers[0]._stacked_operators_cache[1]
        again = stacked_forward(layers, x)
        assert layers[0]._stacked_operators_cache[1] is stacked
        layers[1].weights.data.mul_(0.5)  # a write that bypasses the version counter
        third = stacked_forward(layers, x)
        assert layers[0]._stacked_operators_cache[1] is not stacked
        torch.testing.assert_close(third, torch.stack([l(xm) for l, xm in zip(layers, x)]), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(again, second)
    assert "_stacked_operators_cache" not in layers[0].__getstate__()  # never pickled


def test_layers_that_do_not_stack_run_one_by_one_with_the_same_result():
    mixed = [QuantumLayer({"n_qubits": 3, "n_layers": 1}), QuantumLayer({"n_qubits": 3, "n_layers": 2})]
    assert stack_reason(mixed) == "the layers' circuit specs differ"
    pennylane = [QuantumLayer({"n_qubits": 2, "n_layers": 1, "execution": "pennylane"}) for _ in range(2)]
    assert "PennyLane" in stack_reason(pennylane)
    for layers in (mixed, pennylane):
        x = torch.rand(2, 3, layers[0].spec.n_qubits)
        torch.testing.assert_close(
            stacked_forward(layers, x), torch.stack([l(xm) for l, xm in zip(layers, x)]).float(), atol=1e-5, rtol=1e-5
        )
    with pytest.raises(ValueError, match=r"inputs must have shape \(2, batch, n_qubits\)"):
        stacked_forward(mixed, torch.rand(3, 2, 3))


def _multi(multi_class, n_modules=3, obs_dim=5, action_space=gym.spaces.Discrete(3), **model_config):
    spec = lambda mid: RLModuleSpec(  # noqa: E731
        module_class=QuantumPPORLModule,
        observation_space=gym.spaces.Box(-1, 1, (obs_dim,), np.float32),
        action_space=action_space,
        model_config={"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "seed": 0, "module_id": mid, **model_config},
    )
    ids = [f"agent_{i}" for i in range(n_modules)]
    return MultiRLModuleSpec(multi_rl_module_class=multi_class, rl_module_specs={m: spec(m) for m in ids}).build()


@pytest.mark.parametrize("obs_dim, action_space", [
    (5, gym.spaces.Discrete(3)),                          # the pong features: no encoder, linear head
    (4, gym.spaces.Discrete(3)),                          # zero-padded onto 5 wires
    (12, gym.spaces.Box(0.0, 1.0, (5,), np.float32)),     # simple spread: tanh(linear) encoder, Gaussian head
])
def test_stacked_multi_rl_module_equals_multi_rl_module(obs_dim, action_space):
    stacked = _multi(StackedQuantumMultiRLModule, obs_dim=obs_dim, action_space=action_space)
    plain = _multi(MultiRLModule, obs_dim=obs_dim, action_space=action_space)
    for mid in plain.keys():  # seeded by (seed, module id): the same initial weights
        for a, b in zip(stacked[mid].parameters(), plain[mid].parameters()):
            assert torch.equal(a, b)
    assert stacked.stack_groups(list(stacked.keys())) == [["agent_0", "agent_1", "agent_2"]]
    batch = {mid: {Columns.OBS: torch.rand(rows, obs_dim) * 2 - 1} for mid, rows in zip(plain.keys(), (6, 9, 1))}
    for method in ("forward_train", "forward_exploration", "forward_inference"):
        got, want = getattr(stacked, method)(batch), getattr(plain, method)(batch)
        for mid in plain.keys():
            torch.testing.assert_close(got[mid][Columns.ACTION_DIST_INPUTS], want[mid][Columns.ACTION_DIST_INPUTS], atol=2e-6, rtol=1e-5)
    # gradients reach each module's own parameters, equal to per-module execution
    for multi in (stacked, plain):
        out = multi.forward_train(batch)
        sum(o[Columns.ACTION_DIST_INPUTS].logsumexp(-1).sum() for o in out.values()).backward()
    for mid in plain.keys():
        for (name, a), b in zip(stacked[mid].named_parameters(), plain[mid].parameters()):
            if b.grad is not None:
                torch.testing.assert_close(a.grad, b.grad, atol=2e-5, rtol=1e-4, msg=f"{mid}.{name}")


@pytest.mark.parametrize("obs_dim, action_space, extra", [
    (5, gym.spaces.Discrete(3), {"inverse_temperature": [[0, 1.0], [10, 3.0]]}),   # pong features, a logits factor
    (12, gym.spaces.Box(0.0, 1.0, (5,), np.float32), {}),                          # tanh(linear) encoder, Gaussian head
])
def test_sampling_reuses_the_groups_stack_until_a_tensor_changes(obs_dim, action_space, extra):
    """Forward passes without autograd (env runners) reuse one stack of the group's parameters; every
    way RLlib and torch change a module (optimizer step, set_state, load_state_dict, a buffer's
    fill_, .to()) shows in the next pass, which equals per-module execution; a hook turns it off."""
    stacked = _multi(StackedQuantumMultiRLModule, obs_dim=obs_dim, action_space=action_space, **extra)
    plain = _multi(MultiRLModule, obs_dim=obs_dim, action_space=action_space, **extra)
    batch = {mid: {Columns.OBS: torch.rand(rows, obs_dim) * 2 - 1} for mid, rows in zip(plain.keys(), (6, 9, 1))}

    def check():
        got, want = stacked.forward_exploration(batch), plain.forward_exploration(batch)
        for mid in plain.keys():
            torch.testing.assert_close(got[mid][Columns.ACTION_DIST_INPUTS], want[mid][Columns.ACTION_DIST_INPUTS], atol=2e-6, rtol=1e-5)

    def stack():
        return stacked._group_cache[("sampling", tuple(plain.keys()), torch.float32)]

    check()
    first = stack()
    check()
    assert stack() is first  # unchanged weights: the same stack
    for multi in (stacked, plain):  # an optimizer step on one module
        optimizer = torch.optim.Adam(multi["agent_1"].parameters(), lr=0.1)
        multi.forward_train(batch)["agent_1"][Columns.ACTION_DIST_INPUTS].sum().backward()
        optimizer.step()
    check()
    assert stack() is not first
    state = {mid: {k: v + 0.05 for k, v in plain[mid].get_state().items()} for mid in plain.keys()}
    for multi in (stacked, plain):  # RLlib's weight sync to env runners
        multi.set_state(state)
    check()
    for multi in (stacked, plain):  # torch's own loading, and a module moved to another dtype and back
        multi["agent_2"].load_state_dict({k: v * 0.9 for k, v in plain["agent_2"].state_dict().items()})
        multi["agent_0"].double().float()
    check()
    if "inverse_temperature" in extra:  # the learner moves the factor with fill_
        for multi in (stacked, plain):
            multi["agent_0"].inverse_temperature.fill_(2.5)
        check()
    seen = []
    stacked["agent_1"].actor.register_forward_hook(lambda layer, args, out: seen.append(out.shape))
    check()  # the live path again: the hook runs
    assert seen == [torch.Size([9, stacked["agent_1"].actor.spec.n_readouts])]


def test_stacked_values_equal_each_critic_on_its_embeddings():
    stacked = _multi(StackedQuantumMultiRLModule, n_modules=2)
    wider = RLModuleSpec(  # the same actor (so the same stack group), a wider critic
        module_class=QuantumPPORLModule,
        observation_space=gym.spaces.Box(-1, 1, (5,), np.float32),
        action_space=gym.spaces.Discrete(3),
        model_config={"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "critic_hiddens": [16]},
    ).build()
    stacked.add_module("wider", wider)
    embeddings = torch.rand(3, 7, 5) * 2 - 1
    for group in (["agent_0", "agent_1"], ["agent_0", "wider", "agent_1"]):  # same critics; mixed critics
        assert stacked.stack_groups(group) == [group]
        got = stacked.stacked_values(group, embeddings[: len(group)])
        want = torch.stack([stacked[mid].critic(e).squeeze(-1) for mid, e in zip(group, embeddings)])
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_modules_of_other_shapes_or_classes_are_not_stacked():
    stacked = _multi(StackedQuantumMultiRLModule, n_modules=2)
    other = RLModuleSpec(
        module_class=QuantumPPORLModule,
        observation_space=gym.spaces.Box(-1, 1, (5,), np.float32),
        action_space=gym.spaces.Discrete(3),
        model_config={"circuit": {"n_qubits": 5, "n_layers": 3}},
    ).build()
    stacked.add_module("deeper", other)
    assert stacked.stack_groups(["agent_0", "deeper", "agent_1"]) == [["agent_0", "agent_1"], ["deeper"]]
    out = stacked.forward_exploration({mid: {Columns.OBS: torch.rand(2, 5)} for mid in ("agent_0", "deeper", "agent_1")})
    assert set(out) == {"agent_0", "deeper", "agent_1"}


def _trained(build_algo, stack: bool):
    # ADAM: stacked and per-module execution are compared to float32 tolerance
    exp = load_experiment(FEATURES, tiny("quantum", **{"ppo.num_epochs": 2, "stack_modules": stack, **ADAM}))
    algo = build_algo(exp.algo_config)
    learner = algo.learner_group._learner
    assert type(learner.module) is (StackedQuantumMultiRLModule if stack else MultiRLModule)
    assert type(algo.env_runner.module) is type(learner.module)
    algo.train()
    return algo, learner


def test_ppo_update_with_stacked_modules_equals_per_module_update(build_algo):
    """Same seed, same samples, one PPO iteration: stacked and per-module execution end with the
    same weights, and every module keeps its own optimizers (one per parameter group)."""
    (_, stacked), (_, plain) = _trained(build_algo, True), _trained(build_algo, False)
    obs = {Columns.OBS: torch.rand(64, 5) * 2 - 1}
    for mid in ("paddle_0", "paddle_1"):
        a, b = stacked.module[mid], plain.module[mid]
        with torch.no_grad():
            torch.testing.assert_close(a.forward_inference(obs), b.forward_inference(obs), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(a.compute_values(obs), b.compute_values(obs), atol=1e-4, rtol=1e-4)
        # The last layer's final RZ (weights[-1, :, 2]) cannot change <Z>: its gradient is float noise
        # that Adam scales up to lr-sized steps, differently on either path. Every other weight agrees.
        torch.testing.assert_close(a.actor.weights[:-1], b.actor.weights[:-1], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a.actor.weights[-1, :, :2], b.actor.weights[-1, :, :2], atol=1e-4, rtol=1e-4)
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            if name != "actor.weights":
                torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-4, msg=f"{mid}.{name}")
        [(_, optimizer)] = stacked.get_optimizers_for_module(mid)
        assert [g["name"] for g in optimizer.param_groups] == ["circuit", "input_scale", "output_scale", "classical", "critic"]
        own = {id(p) for p in stacked.module[mid].parameters()}  # Adam state on this module's own tensors only
        assert optimizer.state and all(id(p) in own and int(s["step"]) > 0 for p, s in optimizer.state.items())
    # the two modules are trained apart: different weights, each with its own Adam moments
    w0, w1 = (stacked.module[m].actor.weights for m in ("paddle_0", "paddle_1"))
    assert not torch.allclose(w0, w1)


def test_a_non_finite_observation_in_a_stacked_group_names_its_module():
    stacked = _multi(StackedQuantumMultiRLModule)
    batch = {mid: {Columns.OBS: torch.zeros(3, 5)} for mid in stacked.keys()}
    batch["agent_1"][Columns.OBS][2, 4] = float("nan")
    with pytest.raises(FloatingPointError, match=r"^module 'agent_1': non-finite observation in forward_exploration \(1 of 15"):
        stacked.forward_exploration(batch)
    batch = {mid: {Columns.OBS: torch.zeros(2 + i, 5)} for i, mid in enumerate(stacked.keys())}  # unequal rows
    batch["agent_0"][Columns.OBS][1, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"^module 'agent_0': non-finite observation in forward_exploration \(1 of 10 entries"):
        stacked.forward_exploration(batch)  # the count is of its own rows, not the padded ones
    batch["agent_0"][Columns.OBS][1, 0] = 0.0
    batch["agent_1"][Columns.OBS] = torch.zeros(3, 7)  # not the declared (5,): rerun alone, its own error
    with pytest.raises(ValueError, match=r"observations of shape \(3, 7\) do not match the declared observation space"):
        stacked.forward_exploration(batch)
