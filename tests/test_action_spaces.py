"""Box (continuous) actions: a diagonal Gaussian whose means are the circuit's read-outs and whose
log-stds are learned; trained through RLlib on gymnasium's Pendulum via swap-in."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from rllib_quantum import QuantumPPORLModule
from rllib_quantum.errors import ConfigError

from _tiny import swapped_gym_config

OBS = gym.spaces.Box(-1, 1, (3,), np.float32)


def _module(actions, **model_config):
    return QuantumPPORLModule(observation_space=OBS, action_space=actions,
                              model_config={"circuit": {"n_qubits": 3, "n_layers": 1}, **model_config})


@pytest.mark.parametrize("readout, dims", [("auto", 2), ("linear", 2), ("linear", 5)])
def test_box_actions_give_gaussian_means_from_the_circuit_and_a_learned_log_std(readout, dims):
    module = _module(gym.spaces.Box(-2.0, 2.0, (dims,), np.float32), readout=readout)
    out = module.forward_train({Columns.OBS: torch.rand(4, 3)})[Columns.ACTION_DIST_INPUTS]
    assert out.shape == (4, 2 * dims)
    assert module.get_train_action_dist_cls() is TorchDiagGaussian
    # The means come from the read-out; the log-stds are the free parameter (0 at init: std 1).
    torch.testing.assert_close(out[:, dims:], torch.zeros(4, dims))
    with torch.no_grad():
        module.log_std.fill_(-1.0)
    dist = module.get_train_action_dist_cls().from_logits(module.forward_train({Columns.OBS: torch.rand(4, 3)})[Columns.ACTION_DIST_INPUTS])
    assert dist.sample().shape == (4, dims)
    assert torch.allclose(dist._dist.stddev, torch.full((4, dims), float(np.exp(-1.0))))
    assert any(p is module.log_std for p in module.parameter_groups()["classical"])
    # Gradients reach the circuit through the means.
    loss = dist.logp(torch.zeros(4, dims)).sum()
    loss.backward()
    assert module.actor.weights.grad is not None and module.actor.weights.grad.abs().sum() > 0


def test_box_actions_that_do_not_fit_are_refused():
    with pytest.raises(ConfigError) as info:
        _module(gym.spaces.Box(-1, 1, (2, 2), np.float32))
    assert info.value.key == "action_space" and "1-D Box" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _module(gym.spaces.Box(-1, 1, (5,), np.float32), readout="expval")
    assert info.value.key == "readout"


def test_swap_in_on_pendulum_with_continuous_actions(build_algo):
    """gymnasium's Pendulum (Box(-2, 2, (1,)) actions) for 2 agents, RLlib's usual multi-agent config,
    one swap call: the module samples, trains, and its log-std learns."""
    config = swapped_gym_config("Pendulum-v1", n_qubits=3)
    algo = build_algo(config)
    before = algo.get_module("p0").log_std.detach().clone()
    result = algo.train()
    assert result["learners"]["p0"]["num_module_steps_trained"] > 0
    learner_module = algo.learner_group._learner.module["p0"]
    assert not torch.equal(learner_module.log_std.detach(), before)  # the log-std learns
    assert np.isfinite(result["env_runners"]["episode_return_mean"])
