"""rllib_quantum/simple_spread: mpe2's simple_spread_v3 as a registered RLlib multi-agent env, its
env_config checks, and the shipped spread configs training one tiny iteration."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rllib_quantum.envs import (
    ENV_CREATORS,
    SIMPLE_SPREAD,
    env_spaces,
    make_simple_spread,
    reference_returns,
    validate_simple_spread_config,
)
from rllib_quantum.errors import ConfigError
from _helpers import assert_env_config_refused

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("continuous", [False, True])
def test_spaces_for_two_agents(continuous):
    obs, act, ids = env_spaces(SIMPLE_SPREAD, {"N": 2, "continuous_actions": continuous})
    assert ids == ["agent_0", "agent_1"]
    for agent in ids:
        # own velocity and position (4), 2 landmarks (4), the other agent (2), its communication (2)
        assert obs[agent] == gym.spaces.Box(-np.inf, np.inf, (12,), np.float32)
        expected = gym.spaces.Box(0.0, 1.0, (5,), np.float32) if continuous else gym.spaces.Discrete(5)
        assert act[agent] == expected
    # The env the creator makes steps with those spaces, through RLlib's wrapper.
    env = ENV_CREATORS[SIMPLE_SPREAD]({"N": 2, "continuous_actions": continuous, "max_cycles": 3})
    try:
        observations, _ = env.reset(seed=0)
        assert sorted(observations) == ids and observations["agent_1"].shape == (12,)
        steps, done = 0, False
        while not done:
            observations, rewards, terms, truncs, _ = env.step({a: act[a].sample() for a in ids})
            steps += 1
            done = terms["__all__"] or truncs["__all__"]
        assert steps == 3 and truncs["__all__"] and sorted(rewards) == ids
    finally:
        env.close()


def test_defaults_are_mpe2s():
    from mpe2.simple_spread.simple_spread import raw_env

    import inspect

    params = inspect.signature(raw_env.__init__).parameters
    config = validate_simple_spread_config(None)
    assert config == {key: params[key].default for key in config}
    assert env_spaces(SIMPLE_SPREAD)[2] == ["agent_0", "agent_1", "agent_2"]


@pytest.mark.parametrize(
    "env_config, key, match",
    [
        ({"N": 0}, "N", r"must be an int >= 1 \(number of agents and landmarks\), got 0 \(int\)"),
        ({"N": "3"}, "N", r"must be an int >= 1 .*, got '3' \(str\)"),
        ({"max_cycles": -1}, "max_cycles", r"must be an int >= 1 \(steps per episode\)"),
        ({"continuous_actions": 1}, "continuous_actions", r"must be true .* or false .*, got 1 \(int\)"),
        ({"local_ratio": -0.1}, "local_ratio", r"must be a number in \[0, 1\]"),
        ({"local_ratio": "half"}, "local_ratio", r"must be a number in \[0, 1\] .*, got 'half' \(str\)"),
        ({"landmarks": 3}, "", r"unknown key\(s\) \['landmarks'\]; allowed: \['N', 'continuous_actions', 'max_cycles', 'local_ratio'\]"),
        ([("N", 2)], "", "must be a dict"),
    ],
)
def test_validation_errors_name_the_key(env_config, key, match):
    assert_env_config_refused(
        validate_simple_spread_config, make_simple_spread, ENV_CREATORS[SIMPLE_SPREAD], env_config, key, match
    )


def test_pong_rules_do_not_apply_to_spread():
    """No pong ceiling on return goals; episode length goals are bounded by spread's own max_cycles."""
    from rllib_quantum import load_experiment

    assert reference_returns(SIMPLE_SPREAD, {"N": 3}) == {}
    exp = load_experiment(ROOT / "configs" / "quantum_independent_spread.yaml", {
        "stop": {"env_runners/agent_episode_returns_mean/agent_0": 150.0, "env_runners/episode_len_mean": 25},
    })
    assert exp.stop == {"env_runners/agent_episode_returns_mean/agent_0": 150.0, "env_runners/episode_len_mean": 25}
    with pytest.raises(ConfigError, match=r"must be in \(0, 25\]"):
        load_experiment(ROOT / "configs" / "quantum_independent_spread.yaml", {"stop": {"env_runners/episode_len_mean": 26}})


def test_quantum_spread_config_trains_every_agent(build_algo):
    """The shipped quantum config, tiny: each of the 3 agents' quantum modules trains on its own steps."""
    from rllib_quantum import load_experiment

    exp = load_experiment(ROOT / "configs" / "quantum_independent_spread.yaml", {
        "ppo.train_batch_size_per_learner": 200, "ppo.minibatch_size": 100, "ppo.num_epochs": 1,
        "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 1,
        "model_config.circuit.n_layers": 1,
    })
    algo = build_algo(exp.algo_config)
    result = algo.train()
    agents = ["agent_0", "agent_1", "agent_2"]
    assert {a: type(algo.get_module(a)).__name__ for a in agents} == dict.fromkeys(agents, "QuantumPPORLModule")
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 200
    for agent in agents:
        assert result["learners"][agent]["num_module_steps_trained"] > 0
        assert np.isfinite(result["env_runners"]["agent_episode_returns_mean"][agent])
