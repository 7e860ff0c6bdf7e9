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
        assert result["parameter_averaging"]["rounds"] == 1  # every: 2
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
