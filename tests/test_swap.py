"""with_quantum_policies on configs written RLlib-style (not by this package)."""

import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.envs import COOPERATIVE_PONG, register_envs
from rllib_quantum.modules import QuantumPPORLModule
from rllib_quantum.swap import with_quantum_policies

POLICIES = ("paddle_0", "paddle_1")


def mapping(agent_id, episode, **kwargs):
    return agent_id


def rllib_style_config():
    """Like RLlib's rllib/examples/multi_agent/pettingzoo_independent_learning.py."""
    register_envs()
    return (
        PPOConfig()
        .environment(COOPERATIVE_PONG, env_config={"obs": "features", "max_cycles": 100})
        .env_runners(num_env_runners=0)
        .multi_agent(policies=set(POLICIES), policy_mapping_fn=mapping)
        .training(lr=0.0007, train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1, gamma=0.95)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={p: RLModuleSpec() for p in POLICIES}))
    )


def test_swap_keeps_everything_else_and_trains(build_algo):
    original = rllib_style_config()
    swapped = with_quantum_policies(original, modules=["paddle_1"], circuit={"n_qubits": 5, "n_layers": 1})
    assert swapped is not original
    for key in ("lr", "train_batch_size_per_learner", "minibatch_size", "num_epochs", "gamma", "env", "env_config",
                "num_env_runners", "policies"):
        assert getattr(swapped, key) == getattr(original, key), key
    assert swapped.policy_mapping_fn is mapping
    specs = swapped.rl_module_spec.rl_module_specs
    assert specs["paddle_1"].module_class is QuantumPPORLModule
    assert specs["paddle_1"].model_config["circuit"]["n_layers"] == 1
    assert specs["paddle_0"].module_class is not QuantumPPORLModule  # untouched: RLlib's default
    # The original is unchanged.
    assert all(s.module_class is not QuantumPPORLModule for s in original.rl_module_spec.rl_module_specs.values())

    algo = build_algo(swapped)
    result = algo.train()
    assert isinstance(algo.get_module("paddle_1"), QuantumPPORLModule)
    assert not isinstance(algo.get_module("paddle_0"), QuantumPPORLModule)
    assert algo.get_module("paddle_1").observation_space.shape == (5,)  # spaces inferred by RLlib as before
    assert set(result["learners"]) >= set(POLICIES)


def test_swap_on_policies_and_mapping_only_the_most_common_style(build_algo):
    """`.multi_agent(policies=..., policy_mapping_fn=...)` and no rl_module_spec at all."""
    register_envs()
    config = (
        PPOConfig()
        .environment(COOPERATIVE_PONG, env_config={"obs": "features", "max_cycles": 100})
        .env_runners(num_env_runners=0)
        .multi_agent(policies={"paddle_0", "paddle_1"}, policy_mapping_fn=mapping)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 5, "n_layers": 1})
    assert swapped.learner_class.__name__ == "QuantumPPOTorchLearner"
    algo = build_algo(swapped)
    result = algo.train()
    for mid in POLICIES:
        assert isinstance(algo.get_module(mid), QuantumPPORLModule)
        assert result["learners"][mid]["num_module_steps_trained"] > 0
        assert result["learners"][mid]["quantum/actor_weights_grad_norm"] > 0


def test_swap_all_modules_and_single_agent():
    swapped = with_quantum_policies(rllib_style_config(), circuit={"n_qubits": 5, "n_layers": 1})
    assert all(s.module_class is QuantumPPORLModule for s in swapped.rl_module_spec.rl_module_specs.values())
    single = PPOConfig().environment("CartPole-v1").training(lr=0.01)
    q = with_quantum_policies(single, circuit={"n_qubits": 4, "n_layers": 1})
    assert q.lr == 0.01 and q.rl_module_spec.module_class is QuantumPPORLModule


def test_swap_errors():
    config = rllib_style_config()
    with pytest.raises(ValueError, match=r"unknown module id\(s\) \['paddle_9'\]; known modules: \['paddle_0', 'paddle_1'\]"):
        with_quantum_policies(config, modules=["paddle_9"])
    with pytest.raises(ValueError, match=r"circuit\.n_qubit"):
        with_quantum_policies(config, circuit={"n_qubit": 5})
    from ray.rllib.algorithms.dqn import DQNConfig

    with pytest.raises(TypeError, match=r"supports PPO only.*DQNConfig"):
        with_quantum_policies(DQNConfig())
