"""A nan/inf in observations, logits, values, losses or parameters stops training with a
``FloatingPointError`` naming the module and where it happened (module, learner, remote runner)."""

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns

from rllib_quantum import QuantumPPORLModule, load_experiment, with_quantum_policies
from rllib_quantum.modules.quantum_ppo_rlm import all_finite
from tests._tiny import tiny

VEC5 = gym.spaces.Box(-1, 1, (5,), np.float32)
QUANTUM = "configs/quantum_independent_pong_features.yaml"
NAN_ENV = "rllib_quantum_test/nan_after"


class NanAfter(gym.Env):
    """Finite observations and rewards for ``after - 1`` steps, then nan in ``what`` ("obs" or "reward")."""

    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config=None):
        config = config or {}
        self.after, self.what, self.t = config.get("after", 30), config.get("what", "obs"), 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t >= self.after
        obs = np.full(4, np.nan if bad and self.what == "obs" else 0.1, np.float32)
        reward = float("nan") if bad and self.what == "reward" else 1.0
        return obs, reward, False, self.t >= 50, {}


def _module(**model_config):
    model_config.setdefault("circuit", {"n_qubits": 5, "n_layers": 1})
    return QuantumPPORLModule(observation_space=VEC5, action_space=gym.spaces.Discrete(3), model_config=model_config)


@pytest.mark.parametrize("where", ["forward_exploration", "forward_inference", "forward_train"])
def test_module_refuses_non_finite_observations(where):
    module = _module(module_id="paddle_0")
    obs = torch.zeros(32, 5)
    obs[3, 1], obs[7, 0], obs[9, 4] = float("nan"), float("inf"), -float("inf")
    with pytest.raises(FloatingPointError, match=rf"^module 'paddle_0': non-finite observation in {where} \(3 of 160 entries are nan/inf\)$"):
        getattr(module, where)({Columns.OBS: obs})


def test_module_names_the_non_finite_parameter_behind_bad_logits_and_values():
    module = _module(module_id="paddle_1", critic="quantum")
    with torch.no_grad():
        module.critic[1].bias.fill_(float("nan"))
    batch = {Columns.OBS: torch.zeros(4, 5)}
    module.forward_train(batch)  # the actor is fine
    with pytest.raises(FloatingPointError, match=r"module 'paddle_1': non-finite value in compute_values \(4 of 4 .*non-finite parameters: critic\.1\.bias$"):
        module.compute_values(batch)
    with torch.no_grad():
        module.actor.weights[0, 0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"non-finite logits in forward_exploration .*: actor\.weights, critic\.1\.bias$"):
        module.forward_exploration(batch)


def test_all_finite_is_exact_when_the_sum_overflows():
    big = torch.full((4,), 3e38)  # finite entries whose float32 sum is inf
    assert all_finite(big) and all_finite(torch.zeros(0)) and all_finite(torch.arange(5))
    for bad in (float("nan"), float("inf"), -float("inf")):
        assert not all_finite(torch.tensor([1.0, bad, 2.0]))
    assert not all_finite(torch.tensor([float("inf"), -float("inf")]))  # the sum is nan


def test_unnamed_module_says_so():
    with pytest.raises(FloatingPointError, match=r"^module '<unnamed>': non-finite observation in forward"):
        _module().forward({Columns.OBS: torch.full((1, 5), float("nan"))})


def _nan_config(ray_session, what, runners=0):
    from ray import cloudpickle
    from ray.tune.registry import register_env

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # remote runners cannot import this file
    register_env(NAN_ENV, NanAfter)
    config = (
        PPOConfig()
        .environment(NAN_ENV, env_config={"after": 30, "what": what})
        .env_runners(num_env_runners=runners, num_cpus_per_env_runner=0.5)
        .fault_tolerance(delay_between_env_runner_restarts_s=1)  # RLlib waits 60 s before it restarts a runner
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    return with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1})


def test_nan_observations_stop_training_naming_the_module(build_algo, ray_session):
    algo = build_algo(_nan_config(ray_session, "obs"))
    with pytest.raises(FloatingPointError, match=r"module 'default_policy': non-finite observation in forward_exploration \(4 of 4 entries"):
        algo.train()


def test_nan_observations_on_a_remote_env_runner_stop_training_too(build_algo, ray_session):
    """RLlib's fault tolerance ends a runner whose sample() raised and trains on; the module's
    report (rllib_quantum.safety) makes the driver raise the runner's message instead."""
    algo = build_algo(_nan_config(ray_session, "obs", runners=2))
    with pytest.raises(FloatingPointError, match=r"module 'default_policy': non-finite observation in forward_exploration .*remote env runner"):
        algo.train()


def test_nan_observations_on_a_remote_multi_agent_runner_stop_training_too(build_algo, ray_session):
    """The same for the most common multi-agent config (policies + mapping, no rl_module_spec): RLlib
    builds those runners' modules from the swapped MultiRLModuleSpec, not inference_only, so the
    module must not rely on that flag to know it samples on a remote runner."""
    from ray import cloudpickle
    from ray.rllib.env.multi_agent_env import make_multi_agent
    from ray.tune.registry import register_env

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    register_env(NAN_ENV + "_ma", make_multi_agent(lambda config: NanAfter(config)))
    config = (
        PPOConfig()
        .environment(NAN_ENV + "_ma", env_config={"num_agents": 2, "after": 30, "what": "obs"})
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *args, **kwargs: f"p{aid}")
        .env_runners(num_env_runners=2, num_cpus_per_env_runner=0.5)
        .fault_tolerance(delay_between_env_runner_restarts_s=1)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    algo = build_algo(with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}))
    with pytest.raises(FloatingPointError, match=r"module 'p[01]': non-finite observation in forward_exploration .*remote env runner"):
        algo.train()


def test_nan_rewards_stop_the_learner_before_backward(build_algo, ray_session):
    algo = build_algo(_nan_config(ray_session, "reward"))
    with pytest.raises(FloatingPointError, match=r"module 'default_policy': non-finite loss \(nan\) before backward, optimizer step 1 .*every parameter is finite"):
        algo.train()


def test_nan_parameter_on_the_learner_stops_training_naming_module_and_parameter(build_algo):
    algo = build_algo(load_experiment(QUANTUM, tiny("quantum")).algo_config)
    module = algo.learner_group._learner.module["paddle_1"].unwrapped()
    with torch.no_grad():
        module.actor.input_scale[0, 2] = float("nan")
    with pytest.raises(FloatingPointError, match=r"module 'paddle_1': non-finite logits in forward_train .*non-finite parameters: actor\.input_scale$"):
        algo.train()


def test_a_diverging_optimizer_step_is_caught_after_the_step(build_algo):
    algo = build_algo(load_experiment(QUANTUM, tiny("quantum")).algo_config)
    learner = algo.learner_group._learner
    optimizers = dict(learner.get_optimizers_for_module("paddle_0"))

    def diverge(optimizer, args, kwargs):  # what an exploding update leaves behind
        with torch.no_grad():
            optimizer.param_groups[0]["params"][0].fill_(float("inf"))

    [optimizer] = optimizers.values()  # its first param group is "circuit": actor.weights first
    assert optimizer.param_groups[0]["name"] == "circuit"
    optimizer.register_step_post_hook(diverge)
    with pytest.raises(FloatingPointError, match=r"^module 'paddle_0': non-finite parameter\(s\) actor\.weights after optimizer step 1 of this learner$"):
        algo.train()


def test_a_module_error_on_a_remote_runner_is_reported_for_the_learner(monkeypatch):
    """A forward pass that fails on a remote env runner (observations that do not match the declared
    space) leaves its message for the learner, like a nan does; the learner raises it as a
    RemoteRunnerError. (The Ray round trip is the one tests/test_cli_runs.py runs for env errors.)"""
    import gymnasium as gym
    import numpy as np
    import pytest
    import torch

    from ray.rllib.core.columns import Columns
    from rllib_quantum import QuantumPPORLModule, safety

    reports = []
    monkeypatch.setattr(safety, "in_remote_actor", lambda: True)
    monkeypatch.setattr(safety, "report", reports.append)
    module = QuantumPPORLModule(
        observation_space=gym.spaces.Box(-1, 1, (5,), np.float32), action_space=gym.spaces.Discrete(3),
        inference_only=True, model_config={"circuit": {"n_qubits": 5, "n_layers": 1}, "module_id": "paddle_0"},
    )
    with pytest.raises(ValueError, match=r"observations of shape \(4, 7\) do not match the declared observation space"):
        module.forward_exploration({Columns.OBS: torch.rand(4, 7)})
    assert reports == [
        "module error: module 'paddle_0': ValueError: observations of shape (4, 7) do not match the declared "
        "observation space Box(-1.0, 1.0, (5,), float32) (expected (batch, 5)) (in forward_exploration)"
    ]
    monkeypatch.setattr(safety, "reported", lambda: reports[0])
    with pytest.raises(safety.RemoteRunnerError, match=r"^module 'paddle_0': ValueError: .*raised by a module on a remote env runner"):
        safety.raise_if_reported()
