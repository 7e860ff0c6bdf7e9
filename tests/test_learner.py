"""QuantumPPOTorchLearner: one Adam param group per parameter group at lr x multiplier, frozen circuits,
circuit diagnostics in the results; all on real PPO iterations."""

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

from rllib_quantum import ConfigError, load_experiment
from rllib_quantum.learners import DIAGNOSTICS, QuantumPPOTorchLearner
from rllib_quantum.modules import QuantumPPORLModule, validate_model_config
from tests._tiny import ADAM, tiny

CONFIG = "configs/quantum_independent_pong_features.yaml"
VEC5 = gym.spaces.Box(-1, 1, (5,), np.float32)


def _module(**model_config):
    model_config.setdefault("circuit", {"n_qubits": 5, "n_layers": 2})
    return QuantumPPORLModule(observation_space=VEC5, action_space=gym.spaces.Discrete(3), model_config=model_config)


@pytest.mark.parametrize("critic", ["classical", "quantum"])
def test_parameter_groups_partition_the_trainable_parameters(critic):
    module = _module(critic=critic)
    groups = module.parameter_groups()
    assert list(groups) == ["circuit", "input_scale", "output_scale", "classical", "critic"]
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in module.parameters() if p.requires_grad}
    assert [p is module.actor.weights for p in groups["circuit"]][0]
    assert len(groups["circuit"]) == (2 if critic == "quantum" else 1)
    assert all(p.dim() == 1 for p in groups["output_scale"])
    # the critic group is the value branch's classical part, the rest of the classical weights the actor's
    critic_circuit = [id(layer.weights) for path, layer in module.quantum_layers().items() if path != "actor"]
    assert {id(p) for p in groups["critic"]} == {id(p) for p in module.critic.parameters()} - set(critic_circuit) - {
        id(p) for p in groups["input_scale"] + groups["output_scale"]}
    assert {id(p) for p in groups["classical"]} == {id(p) for p in module.actor_head.parameters()}


def test_frozen_circuit_weights_are_state_but_not_parameters():
    module = _module(circuit={"n_qubits": 5, "n_layers": 2, "trainable_weights": False})
    names = dict(module.named_parameters())
    assert "actor.weights" not in names and "actor.weights" in module.state_dict()
    assert module.parameter_groups()["circuit"] == []
    assert module.parameter_counts()["quantum"] == 5 * 2 + 3  # input scalings + output scalings only


@pytest.mark.parametrize(
    "value, key, match",
    [
        ({"circuits": 1.0}, "lr_multipliers",
         r"unknown key\(s\) \['circuits'\]; allowed: \['circuit', 'input_scale', 'output_scale', 'classical', 'critic'\]"),
        ({"circuit": -1}, "lr_multipliers.circuit", r"must be a finite number >= 0, got -1"),
        ({"classical": float("nan")}, "lr_multipliers.classical", r"must be a finite number >= 0"),
        ([1.0], "lr_multipliers", r"must be a dict"),
    ],
)
def test_bad_lr_multipliers_name_the_key(value, key, match):
    with pytest.raises(ConfigError, match="^" + re.escape(key) + ": " + match) as info:
        validate_model_config({"lr_multipliers": value})
    assert info.value.key == key


def _local_learner(algo):
    return algo.learner_group._learner


def test_each_group_trains_at_its_own_rate_and_zero_freezes(build_algo):
    exp = load_experiment(CONFIG, tiny("quantum", **{
        "ppo.lr": 0.004,
        "model_config.lr_multipliers": {"circuit": 1.0, "input_scale": 0.5, "output_scale": 0.0, "classical": 0.25,
                                          "critic": 2.0},
    }))
    assert exp.algo_config.learner_class is QuantumPPOTorchLearner
    algo = build_algo(exp.algo_config)
    learner = _local_learner(algo)
    module = learner.module["paddle_0"].unwrapped()
    [(name, optimizer)] = learner.get_optimizers_for_module("paddle_0")  # one Adam, one param group per group
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == {"circuit": pytest.approx(0.004), "input_scale": pytest.approx(0.002), "classical": pytest.approx(0.001),
                   "critic": pytest.approx(0.008)}
    groups = module.parameter_groups()
    for group in optimizer.param_groups:
        assert [id(p) for p in group["params"]] == [id(p) for p in groups[group["name"]]]
    before = {k: v.clone() for k, v in module.state_dict().items()}
    algo.train()
    after = module.state_dict()
    assert torch.equal(before["actor.output_scale"], after["actor.output_scale"])  # multiplier 0: frozen
    for key in ("actor.weights", "actor.input_scale", "actor_head.weight", "critic.0.weight"):
        assert not torch.equal(before[key], after[key]), key


def test_lr_schedule_moves_every_group_at_its_multiplier(build_algo):
    # RLlib hands a scheduled lr over as a 0-d tensor, which torch's foreach Adam refuses: the
    # learner must set floats, and keep each group's multiplier as the schedule moves.
    exp = load_experiment(CONFIG, tiny("quantum", **{
        "ppo.lr": [[0, 0.004], [400, 0.0004]],
        "ppo.entropy_coeff": [[0, 0.01], [400, 0.0]],
        "model_config.lr_multipliers": {"input_scale": 0.5, "output_scale": 2.0},
    }))
    algo = build_algo(exp.algo_config)
    [(_, optimizer)] = _local_learner(algo).get_optimizers_for_module("paddle_0")
    seen, entropy_coeffs = [], []
    for _ in range(2):
        entropy_coeffs.append(algo.train()["learners"]["paddle_0"]["curr_entropy_coeff"])
        lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
        assert all(type(lr) is float for lr in lrs.values()), lrs
        assert lrs["input_scale"] == pytest.approx(0.5 * lrs["circuit"])
        assert lrs["output_scale"] == pytest.approx(2.0 * lrs["circuit"])
        assert lrs["classical"] == pytest.approx(lrs["circuit"]) == pytest.approx(lrs["critic"])
        seen.append(lrs["circuit"])
    assert 0.004 > seen[0] > seen[1] >= 0.0004 - 1e-12, seen  # annealed, step by step
    assert 0.01 >= entropy_coeffs[0] > entropy_coeffs[1] >= 0.0, entropy_coeffs  # its schedule too


def test_grad_clip_bounds_what_the_fused_adams_step_with(build_algo):
    # ppo.grad_clip (global norm per module) must reach the package's own optimizer path, which
    # replaces RLlib's apply_gradients: RLlib clips in postprocess_gradients, before it.
    clip = 1e-3
    exp = load_experiment(CONFIG, tiny("quantum", **{"ppo.grad_clip": clip}))
    algo = build_algo(exp.algo_config)
    learner = _local_learner(algo)
    norms = []
    inner = learner.apply_gradients

    def recording(gradients_dict):
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in gradients_dict.values()])).item())
        return inner(gradients_dict)

    learner.apply_gradients = recording
    result = algo.train()
    assert norms and max(norms) <= math.sqrt(2) * clip * (1 + 1e-4), norms  # two modules, each clipped to clip
    for mid in ("paddle_0", "paddle_1"):  # RLlib reports the norm before clipping
        assert result["learners"][mid]["gradients_default_optimizer_global_norm"] > clip


def test_frozen_circuit_ablation_trains_everything_but_the_circuit(build_algo):
    exp = load_experiment(CONFIG, tiny("quantum", **{"model_config.circuit.trainable_weights": False,
                                                     "env_runners.num_env_runners": 1}))
    algo = build_algo(exp.algo_config)
    learner = _local_learner(algo)
    before = {m: {k: v.clone() for k, v in learner.module[m].unwrapped().state_dict().items()} for m in ("paddle_0", "paddle_1")}
    algo.train()
    algo.train()
    runner_states = algo.env_runner_group.foreach_env_runner(lambda r: r.module.get_state(), local_env_runner=False)
    for mid in ("paddle_0", "paddle_1"):
        after = learner.module[mid].unwrapped().state_dict()
        assert torch.equal(before[mid]["actor.weights"], after["actor.weights"])
        assert not torch.equal(before[mid]["actor.input_scale"], after["actor.input_scale"])
        assert not torch.equal(before[mid]["actor.output_scale"], after["actor.output_scale"])
        # The remote runner acts with the same frozen circuit the learner holds.
        np.testing.assert_array_equal(np.asarray(runner_states[0][mid]["actor.weights"]), after["actor.weights"].numpy())


def test_circuit_diagnostics_reach_the_results(build_algo):
    # ADAM: its lr-sized steps keep the input scalings near their init (asserted below)
    exp = load_experiment(CONFIG, tiny("quantum", **{"model_config.critic": "quantum", **ADAM}))
    result = build_algo(exp.algo_config).train()
    for mid in ("paddle_0", "paddle_1"):
        stats = result["learners"][mid]
        for circuit in ("actor", "critic"):
            values = {d: stats[f"quantum/{circuit}_{d}"] for d in DIAGNOSTICS}
            assert all(math.isfinite(v) for v in values.values()), values
            assert values["weights_grad_norm"] > 0
            assert 0 < values["readout_abs_mean"] <= 1
            assert values["input_scale_mean"] == pytest.approx(1.0, abs=0.1)  # init 1.0, a few small steps


def test_diagnostics_are_the_means_over_minibatches_of_plain_torch_values(build_algo):
    """The learner keeps every module's diagnostics as one tensor per minibatch (foreach norms);
    the logged values equal per-parameter torch norms and means, averaged over the minibatches."""
    exp = load_experiment(CONFIG, tiny("quantum", **{"model_config.critic": "quantum"}))
    learner = _local_learner(build_algo(exp.algo_config))
    learner._pending_diagnostics.clear()
    g = torch.Generator().manual_seed(0)
    want = {}
    for _ in range(2):  # two "minibatches" with different gradients and scalings
        for mid in ("paddle_0", "paddle_1"):
            for name, layer in learner.module[mid].unwrapped().quantum_layers().items():
                circuit = "actor" if name == "actor" else "critic"
                layer.weights.grad = torch.randn(layer.weights.shape, generator=g)
                with torch.no_grad():
                    layer.input_scale.copy_(torch.randn(layer.input_scale.shape, generator=g))
                    layer.output_scale.copy_(torch.randn(layer.output_scale.shape, generator=g))
                learner._readouts[mid][circuit] = torch.rand((), generator=g)
                for key, value in {
                    "weights_grad_norm": layer.weights.grad.norm(),
                    "input_scale_mean": layer.input_scale.abs().mean(),
                    "output_scale_mean": layer.output_scale.abs().mean(),
                    "readout_abs_mean": learner._readouts[mid][circuit],
                }.items():
                    want.setdefault((mid, f"quantum/{circuit}_{key}"), []).append(float(value))
        learner._keep_diagnostics(["paddle_0", "paddle_1"])
    learner.after_gradient_based_update(timesteps={})
    assert len(want) == 2 * 2 * 4
    for key, values in want.items():
        assert float(learner.metrics.peek(key)) == pytest.approx(sum(values) / 2, rel=1e-5), key


def test_classical_experiments_keep_rllibs_own_learner():
    exp = load_experiment("configs/classical_independent_pong_features.yaml", tiny("classical"))
    assert exp.algo_config.learner_class is not QuantumPPOTorchLearner
