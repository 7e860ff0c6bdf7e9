"""Natural-gradient steps for quantum actors (``model_config["natural_gradient"]``): the Fisher matrix
against PennyLane's own circuit and per-state autograd, the step's KL against the policies it
moves between, the config checks, and the learner taking the steps in a real PPO run."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

from rllib_quantum.config import load_experiment
from rllib_quantum.errors import ConfigError
from rllib_quantum.learners import natural_gradient
from rllib_quantum.modules import QuantumPPORLModule
from rllib_quantum.modules.model_config import NaturalGradientConfig, QuantumModelConfig, validate_model_config
from tests._tiny import tiny

BOX5 = gym.spaces.Box(-1, 1, (5,), np.float32)
NATURAL = {"kl": 1e-3}


def _module(action_space=gym.spaces.Discrete(3), obs_space=BOX5, seed=0, **model_config):
    config = {"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "natural_gradient": NATURAL, "seed": seed}
    config.update(model_config)
    return QuantumPPORLModule(observation_space=obs_space, action_space=action_space, model_config=config)


def _fisher_by_autograd(module, obs, batch_obs=None):
    """F from each state's dist inputs through the module's own forward (``torch.autograd.grad`` per
    output and state) and the distribution's metric written out here."""
    params = [p for _, p, _ in natural_gradient.actor_parameters(module)]
    kind = module.quantum_config.action_head.kind
    total, rows = 0, len(obs if batch_obs is None else next(iter(batch_obs.values())))
    for r in range(rows):
        row = {Columns.OBS: obs[r:r + 1]} if batch_obs is None else {Columns.OBS: {k: v[r:r + 1] for k, v in batch_obs.items()}}
        inputs = module.forward_train(row)[Columns.ACTION_DIST_INPUTS][0]
        if kind == "diag_gaussian":
            inputs = inputs[: len(inputs) // 2]  # the means; the log-stds are not stepped
        jac = torch.stack([
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(inputs[k], params, retain_graph=True, allow_unused=True)])
            for k in range(len(inputs))
        ]).double()
        if kind == "diag_gaussian":
            metric = torch.diag(torch.exp(-2 * module.log_std.detach().double()))
        else:
            metric = torch.zeros(len(inputs), len(inputs), dtype=torch.float64)
            start = 0
            for size in module.quantum_config.action_head.sizes:
                p = torch.softmax(inputs[start:start + size].detach().double(), -1)
                metric[start:start + size, start:start + size] = torch.diag(p) - torch.outer(p, p)
                start += size
        total = total + jac.T @ metric @ jac
    return total / rows


@pytest.mark.parametrize(
    "case",
    ["linear_readout", "expval_readout", "multi_discrete", "box", "frozen_circuit", "controlled_rotations", "angle_encoding",
     "inverse_temperature"],
)
def test_fisher_equals_per_state_autograd(case):
    kwargs, action_space = {}, gym.spaces.Discrete(3)
    if case == "expval_readout":
        kwargs["readout"] = "expval"
    elif case == "multi_discrete":
        action_space = gym.spaces.MultiDiscrete([3, 2])
    elif case == "box":
        action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    elif case == "frozen_circuit":
        kwargs["circuit"] = {"n_qubits": 5, "n_layers": 2, "trainable_weights": False}
    elif case == "controlled_rotations":
        kwargs["circuit"] = {"n_qubits": 5, "n_layers": 2, "ansatz": "controlled_rotations", "weight_init_std": 1.0}
    elif case == "angle_encoding":
        kwargs["circuit"] = {"n_qubits": 5, "n_layers": 2, "encoding": "angle"}
    elif case == "inverse_temperature":  # the logits' factor, here mid-schedule (the learner moves it)
        kwargs["inverse_temperature"] = [[0, 1.0], [100, 3.0]]
    module = _module(action_space, **kwargs)
    if case == "inverse_temperature":
        module.inverse_temperature.fill_(2.3)
    if case == "box":
        with torch.no_grad():
            module.log_std.copy_(torch.tensor([-0.3, 0.4]))
    obs = torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = _fisher_by_autograd(module, obs)
    got = natural_gradient.fisher(module, module.embed({Columns.OBS: obs}, "test"))
    names = [n for n, _, _ in natural_gradient.actor_parameters(module)]
    assert ("actor.weights" in names) == (case != "frozen_circuit")
    assert got.shape == expected.shape == (sum(p.numel() for _, p, _ in natural_gradient.actor_parameters(module)),) * 2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_fisher_with_an_action_mask_gives_masked_actions_no_weight():
    obs_space = gym.spaces.Dict({"obs": BOX5, "action_mask": gym.spaces.Box(0, 1, (3,), np.int8)})
    module = _module(gym.spaces.Discrete(3), obs_space)
    g = torch.Generator().manual_seed(2)
    obs = {"obs": torch.rand(5, 5, generator=g) * 2 - 1, "action_mask": torch.tensor([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1], [1, 1, 0]])}
    batch = {Columns.OBS: obs}
    got = natural_gradient.fisher(module, module.embed(batch, "test"), batch)
    torch.testing.assert_close(got, _fisher_by_autograd(module, None, obs), rtol=1e-4, atol=1e-7)


def test_fisher_matches_pennylanes_circuit():
    """The same parameters on PennyLane's QNode (``execution: pennylane``): its per-state Jacobians
    through PennyLane's own differentiation give the same Fisher matrix."""
    module = _module()
    config = module.quantum_config.to_dict()
    config["circuit"]["execution"] = "pennylane"
    config["natural_gradient"] = None  # the PennyLane path cannot take the steps; it only checks them here
    reference = QuantumPPORLModule(observation_space=BOX5, action_space=gym.spaces.Discrete(3), model_config=config)
    reference.load_state_dict(module.state_dict())
    obs = torch.rand(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float32) * 2 - 1
    expected = _fisher_by_autograd(reference, obs)
    got = natural_gradient.fisher(module, module.embed({Columns.OBS: obs}, "test"))
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-6)


def test_a_natural_step_moves_the_policy_by_its_kl():
    """A policy-gradient step on the same states: the measured mean KL(old || new) over those
    states is the requested ``kl`` (the quadratic estimate holds for small steps: at this random
    initial policy, 1.04x at 1e-5, 1.35x at 1e-4), and the step goes downhill."""
    kl = 1e-5
    module = _module(seed=4)
    g = torch.Generator().manual_seed(5)
    obs = torch.rand(400, 5, generator=g) * 2 - 1
    batch = {Columns.OBS: obs}
    f = natural_gradient.fisher(module, module.embed(batch, "test"))
    params = [p for _, p, _ in natural_gradient.actor_parameters(module)]
    logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    actions = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=g)[:, 0]
    advantages = torch.randn(400, generator=g)
    loss = -(advantages * torch.log_softmax(logits, -1).gather(1, actions[:, None])[:, 0]).mean()
    grad = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, params)])
    step = natural_gradient.natural_step(f, grad, kl=kl, damping=1e-3)
    before = torch.log_softmax(logits.detach().double(), -1)
    with torch.no_grad():
        offset = 0
        for p in params:
            p.add_(step[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
        after = torch.log_softmax(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS].double(), -1)
    measured = float((before.exp() * (before - after)).sum(-1).mean())
    assert measured == pytest.approx(kl, rel=0.15)
    assert float(-(advantages * after.gather(1, actions[:, None])[:, 0].float()).mean()) < float(loss.detach())  # downhill


@pytest.mark.parametrize(
    "value, key, fragment",
    [
        ({"kl": 0}, "model_config.natural_gradient.kl", "> 0"),
        ({"kl": float("nan")}, "model_config.natural_gradient.kl", "> 0"),
        ({"kl": True}, "model_config.natural_gradient.kl", "> 0"),
        ({"damping": -1}, "model_config.natural_gradient.damping", "> 0"),
        ({"fisher_rows": 0}, "model_config.natural_gradient.fisher_rows", ">= 1"),
        ({"fisher_rows": 2.5}, "model_config.natural_gradient.fisher_rows", ">= 1"),
        ({"step": 1}, "model_config.natural_gradient", "unknown key(s) ['step']"),
        (0.001, "model_config.natural_gradient", "must be a dict"),
    ],
)
def test_bad_natural_gradient_settings_name_the_key(value, key, fragment):
    with pytest.raises(ConfigError) as err:
        validate_model_config({"natural_gradient": value}, prefix="model_config")
    assert err.value.key == key and fragment in str(err.value)


def test_natural_gradient_needs_the_fast_path_and_a_small_register():
    with pytest.raises(ConfigError, match="fast path, but execution is 'pennylane'"):
        validate_model_config({"circuit": {"n_qubits": 3, "execution": "pennylane"}, "natural_gradient": {}})
    with pytest.raises(ConfigError, match="at most 6 qubits"):
        validate_model_config({"circuit": {"n_qubits": 7}, "natural_gradient": {}})


def test_natural_gradient_settings_round_trip_and_default_off():
    cfg = QuantumModelConfig.from_dict({"natural_gradient": {"kl": 2e-4, "fisher_rows": 64}}, BOX5, gym.spaces.Discrete(3))
    assert cfg.natural_gradient == NaturalGradientConfig(kl=2e-4, damping=1e-3, fisher_rows=64)
    assert QuantumModelConfig.from_dict(cfg.to_dict(), BOX5, gym.spaces.Discrete(3)) == cfg
    assert QuantumModelConfig.from_dict({}, BOX5, gym.spaces.Discrete(3)).natural_gradient is None


def test_ppo_takes_natural_steps_for_the_actor_and_adam_steps_the_rest(build_algo, tmp_path):
    """A real PPO iteration on pong features, YAML config plus ``--set``-style overrides: the actor's
    circuit, scalings and read-out head move by natural-gradient steps (Adam keeps no state for
    them), the critic by Adam, and the steps' KL estimates are logged under ``quantum/``."""
    exp = load_experiment(
        "configs/quantum_independent_pong_features.yaml",
        tiny("quantum", **{"model_config.natural_gradient": {"kl": 1e-3, "fisher_rows": 50}}),
    )
    algo = build_algo(exp.algo_config)
    learner = algo.learner_group._learner
    module = learner.module["paddle_0"].unwrapped()
    stepped = natural_gradient.actor_parameters(module)
    assert [n for n, _, _ in stepped] == ["actor.weights", "actor.input_scale", "actor.output_scale", "actor_head.weight", "actor_head.bias"]
    before = copy.deepcopy(module.state_dict())
    result = algo.train()
    after = module.state_dict()
    for name in ("actor.weights", "actor.input_scale", "actor.output_scale", "actor_head.weight", "critic.0.weight"):
        assert not torch.equal(before[name], after[name]), name
    state = learner.get_optimizer("paddle_0").state
    assert all(len(state.get(p, {})) == 0 for _, p, _ in stepped)  # Adam never stepped them
    assert any(len(state.get(p, {})) > 0 for p in module.critic.parameters())
    metrics = result["learners"]["paddle_0"]
    # The steps' quadratic KL estimate is at most the request (less what the damping takes: here
    # the Fisher matrix comes from 50 of the minibatch's 100 states).
    assert 0 < metrics["quantum/actor_natural_step_kl"] <= 1.0001e-3
    assert metrics["quantum/actor_natural_step_norm"] > 0
    # A checkpoint carries each module's Fisher-row draws: a restored learner draws what this one would.
    restored = Algorithm.from_checkpoint(algo.save_to_path(str(tmp_path / "checkpoint")))
    try:
        rows = restored.learner_group._learner._fisher_rows
        assert set(rows) == {"paddle_0", "paddle_1"}
        for mid, generator in learner._fisher_rows.items():
            assert torch.equal(rows[mid].get_state(), generator.get_state())
    finally:
        restored.stop()
