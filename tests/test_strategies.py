"""Every strategy trains from its YAML (tiny features view), with quantum and classical modules."""

import gymnasium as gym
import numpy as np
import pytest

from rllib_quantum.config import load_experiment

from _tiny import tiny

CASES = [
    ("quantum", "independent"),
    ("quantum", "shared"),
    ("classical", "shared"),
    ("quantum", "joint"),
    ("classical", "joint"),
    ("quantum", "averaged"),
]


def _returns(result):
    return result["env_runners"].get("module_episode_returns_mean", {})


@pytest.mark.parametrize("kind,strategy", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_strategy_trains_two_iterations(build_algo, kind, strategy):
    exp = load_experiment(f"configs/{kind}_{strategy}_pong_features.yaml", tiny(kind))
    algo = build_algo(exp.algo_config)
    for _ in range(2):
        result = algo.train()
    assert result["training_iteration"] == 2
    trained = set(result["learners"]) - {"__all_modules__"}
    assert trained == set(exp.plan.module_ids), trained
    assert result["env_runners"]["num_env_steps_sampled"] >= 200
    assert set(_returns(result)) == set(exp.plan.module_ids)
    if strategy == "joint":
        module = algo.get_module("joint")
        assert isinstance(module.action_space, gym.spaces.MultiDiscrete)
        assert module.action_space.nvec.tolist() == [3, 3] and module.observation_space.shape == (10,)
    if strategy == "averaged":
        assert result["parameter_averaging"]["rounds"] == 2  # every: 1
    if kind == "quantum":
        assert type(algo.get_module(exp.plan.module_ids[0])).__name__ == "QuantumPPORLModule"


def test_averaged_classical_runs_through_tune(ray_session, storage):
    """Tune pickles the config (the factory-made callback class included) into its trial actor."""
    exp = load_experiment("configs/classical_averaged_pong_features.yaml", tiny("classical", **{"averaging.every": 1}))
    results = exp.tuner(storage).fit()
    assert not results.errors, results.errors
    last = results.get_best_result(metric="training_iteration", mode="max").metrics
    assert last["training_iteration"] == 2
    assert last["parameter_averaging"]["rounds"] == 2
    assert np.isfinite(last["parameter_averaging"]["divergence"])


PIXEL_CASES = [("quantum", "independent"), ("classical", "joint")]


@pytest.mark.parametrize("kind,strategy", PIXEL_CASES, ids=[f"{k}-{s}" for k, s in PIXEL_CASES])
def test_pixel_configs_train_one_iteration(build_algo, kind, strategy):
    """The paper's setting: rendered 42x42x4 frames (joint: both paddles' stacks, 8 channels)."""
    overrides = {**tiny(kind), "env_config.obs": "pixels", "ppo.train_batch_size_per_learner": 100, "ppo.minibatch_size": 50}
    overrides.pop("model_config.circuit.n_qubits", None)
    exp = load_experiment(f"configs/{kind}_{strategy}_pong_pixels.yaml", overrides)
    algo = build_algo(exp.algo_config)
    result = algo.train()
    module = algo.get_module(exp.plan.module_ids[0])
    assert module.observation_space.shape == ((42, 42, 8) if strategy == "joint" else (42, 42, 4))
    for module_id in exp.plan.module_ids:
        assert result["learners"][module_id]["num_module_steps_trained"] > 0
    if kind == "quantum":
        assert module.resolved_model_config["encoder"] == "cnn"


def test_bad_strategy_module_and_classical_model_config_raise_config_errors():
    """Keys name the experiment key; a model_config key is its path inside the model_config."""
    from rllib_quantum.envs import COOPERATIVE_PONG
    from rllib_quantum.errors import ConfigError
    from rllib_quantum.strategies import module_spec, multi_module_spec, plan_strategy, validate_classical_model_config

    cases = [
        (lambda: plan_strategy("federated", COOPERATIVE_PONG, ["a"]), "strategy",
         r"must be one of \['independent', 'shared', 'joint', 'averaged'\], got 'federated'"),
        (lambda: plan_strategy("joint", "my_env", ["a", "b"]), "strategy", r"'joint' needs a joint-agent variant of env 'my_env'"),
        (lambda: module_spec("hybrid"), "module", r"must be one of \['quantum', 'classical'\], got 'hybrid'"),
        (lambda: validate_classical_model_config({"fcnet_hidden": [8]}), "", r"unknown key\(s\) \['fcnet_hidden'\]; allowed"),
        (lambda: module_spec("quantum", {"circuit": {"n_qubits": 25}}), "circuit.n_qubits", r"must be an int in 1\.\.24, got 25"),
    ]
    for call, key, match in cases:
        with pytest.raises(ConfigError, match=match) as info:
            call()
        assert info.value.key == key, (key, info.value)
    box = gym.spaces.Box(-1, 1, (5,), np.float32)
    plan = plan_strategy("shared", COOPERATIVE_PONG, ["a", "b"])
    with pytest.raises(ConfigError, match=r"'shared': agents 'a' and 'b' share module 'shared'") as info:
        multi_module_spec(plan, "quantum", {}, {"a": box, "b": gym.spaces.Box(-1, 1, (4,), np.float32)},
                          {"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(3)})
    assert info.value.key == "strategy"
