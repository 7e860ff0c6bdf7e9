"""Tests for rllib_quantum.envs against the real PettingZoo cooperative pong.

No Ray cluster is started: ``register_env`` only queues the creators locally.
"""

from __future__ import annotations

import inspect
import warnings

import gymnasium as gym
import numpy as np
import pytest

from rllib_quantum.envs import (
    COOPERATIVE_PONG,
    COOPERATIVE_PONG_JOINT,
    ENV_CREATORS,
    ENV_VALIDATORS,
    SIMPLE_SPREAD,
    CooperativePongFeatures,
    JointAgentEnv,
    env_spaces,
    make_cooperative_pong,
    make_parallel_pong,
    random_action,
    register_envs,
    scripted_tracker_action,
    validate_pong_config,
)
from rllib_quantum.envs.validation import GAME_DEFAULTS
from rllib_quantum.errors import ConfigError
from _helpers import assert_env_config_refused

AGENTS = ["paddle_0", "paddle_1"]


def _aec_env(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "old creation API"
        from pettingzoo.butterfly import cooperative_pong_v6
    return cooperative_pong_v6.env(**kwargs)


def _play(env, policy, seed, rng):
    """Sum of paddle_0's rewards over one episode of a features-view env."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    while env.agents:
        obs, rew, *_ = env.step({a: policy(obs[a], rng) for a in AGENTS})
        total += rew["paddle_0"]
    return total


def test_defaults_match_the_game():
    from pettingzoo.butterfly.cooperative_pong.cooperative_pong import CooperativePong

    params = inspect.signature(CooperativePong.__init__).parameters
    assert {k: params[k].default for k in GAME_DEFAULTS} == GAME_DEFAULTS


def test_features_obs_in_bounds_with_right_shape_and_dtype():
    env = CooperativePongFeatures(max_cycles=200)
    space = env.observation_space("paddle_0")
    assert space == gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs["paddle_0"][[0, 1, 4]], 0.0, atol=0.05)  # centred
    assert np.isclose(np.hypot(*obs["paddle_0"][2:4]), 1.0)  # |v| == ball_speed
    seen = 0
    for _ in range(5):
        while env.agents:
            for agent in AGENTS:
                assert obs[agent].shape == (5,) and obs[agent].dtype == np.float32
                assert space.contains(obs[agent])
            obs, *_ = env.step({a: random_action(rng=rng) for a in AGENTS})
            seen += 1
        obs, _ = env.reset()
    assert seen > 100


def test_action_1_moves_up_and_2_moves_down():
    env = CooperativePongFeatures()
    obs, _ = env.reset(seed=0)
    y0 = obs["paddle_0"][4]
    obs, *_ = env.step({"paddle_0": 1, "paddle_1": 2})
    assert obs["paddle_0"][4] < y0 < obs["paddle_1"][4]  # up = smaller y


@pytest.mark.filterwarnings("ignore:.*You are calling render method")
@pytest.mark.parametrize(
    "game_kwargs",
    [
        {"max_cycles": 120},
        {"max_cycles": 150, "cake_paddle": False, "bounce_randomness": True,
         "ball_speed": 7, "left_paddle_speed": 9, "off_screen_penalty": -3},
    ],
)
def test_features_env_reproduces_pettingzoo_aec(game_kwargs):
    """Same seed + actions: same ball/paddle rects, rewards, terminations, truncations."""
    ours = CooperativePongFeatures(**game_kwargs)
    aec = _aec_env(**game_kwargs)
    rng = np.random.default_rng(1)
    obs, _ = ours.reset(seed=7)
    aec.reset(seed=7)
    game, ref = ours.game, aec.unwrapped.env
    cycles = episodes = terminated = truncated = 0
    while cycles < 600:
        # Even episodes mostly track (long rallies, truncation), odd ones mostly
        # random (the ball gets lost: termination).
        p_track = 0.9 if episodes % 2 == 0 else 0.2
        actions = {
            a: scripted_tracker_action(obs[a]) if rng.random() < p_track
            else int(rng.integers(3))
            for a in AGENTS
        }
        obs, rew, term, trunc, _ = ours.step(actions)
        for agent in AGENTS:
            aec.step(actions[agent])
        cycles += 1
        assert tuple(game.ball._rect) == tuple(ref.ball._rect), cycles
        np.testing.assert_allclose(game.ball._speed, ref.ball._speed)
        assert [tuple(r) for r in game.p0.rects] == [tuple(r) for r in ref.p0.rects]
        assert [tuple(r) for r in game.p1.rects] == [tuple(r) for r in ref.p1.rects]
        assert rew == pytest.approx({a: aec.rewards[a] for a in AGENTS})
        assert term == dict(aec.terminations) and trunc == dict(aec.truncations)
        if not ours.agents:
            terminated += any(term.values())
            truncated += any(trunc.values())
            episodes += 1
            obs, _ = ours.reset()  # no seed: both keep drawing from their generator
            aec.reset()
    assert episodes >= 2 and terminated >= 1 and truncated >= 1


def test_own_side_frame_mirrors_the_right_paddles_x_and_vx_only():
    """``frame: own_side``: the same game (same seed and actions) seen from each paddle's own goal
    line: paddle_1's ball x and vx negated, everything else as in the screen frame."""
    screen = make_parallel_pong({"max_cycles": 200})
    own = make_parallel_pong({"max_cycles": 200, "frame": "own_side"})
    rng = np.random.default_rng(3)
    obs_s, _ = screen.reset(seed=5)
    obs_o, _ = own.reset(seed=5)
    flip = np.array([-1, 1, -1, 1, 1], np.float32)
    mirrored = 0
    for _ in range(200):
        np.testing.assert_array_equal(obs_o["paddle_0"], obs_s["paddle_0"])
        np.testing.assert_array_equal(obs_o["paddle_1"], flip * obs_s["paddle_1"])
        mirrored += not np.array_equal(obs_o["paddle_1"], obs_s["paddle_1"])
        if not screen.agents:
            break
        actions = {a: int(rng.integers(3)) for a in AGENTS}
        obs_s, rew_s, *_ = screen.step(actions)
        obs_o, rew_o, *_ = own.step(actions)
        assert rew_o == rew_s
    assert mirrored > 10  # the comparison saw the frames differ


def test_features_env_is_deterministic_under_a_seed():
    def trajectory(seed):
        env = CooperativePongFeatures(bounce_randomness=True)
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=seed)
        out = [obs["paddle_1"]]
        for _ in range(150):
            if not env.agents:
                obs, _ = env.reset()
            obs, *_ = env.step({a: random_action(rng=rng) for a in AGENTS})
            out.append(obs["paddle_1"])
        return np.stack(out)

    np.testing.assert_array_equal(trajectory(11), trajectory(11))
    assert not np.array_equal(trajectory(11)[:1], trajectory(12)[:1])


def test_rllib_env_features_view_truncates_at_max_cycles():
    env = make_cooperative_pong({"max_cycles": 60})
    assert env.agents == AGENTS and env.possible_agents == AGENTS
    assert env.get_observation_space("paddle_1").shape == (5,)
    assert env.get_action_space("paddle_0") == gym.spaces.Discrete(3)
    obs, _ = env.reset(seed=0)
    total, steps = 0.0, 0
    while True:
        obs, rew, term, trunc, _ = env.step(
            {a: scripted_tracker_action(obs[a]) for a in AGENTS}
        )
        total += rew["paddle_1"]
        steps += 1
        if term["__all__"] or trunc["__all__"]:
            break
    assert (steps, term["__all__"], trunc["__all__"]) == (60, False, True)
    assert total == pytest.approx(100.0)


def test_pixels_view_shapes_dtype_and_range():
    env = make_cooperative_pong({"obs": "pixels", "max_cycles": 12})
    space = env.get_observation_space("paddle_0")
    assert space == gym.spaces.Box(0.0, 1.0, (42, 42, 4), np.float32)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(12):
        for agent in AGENTS:
            frame = obs[agent]
            assert frame.shape == (42, 42, 4) and frame.dtype == np.float32
            assert 0.0 <= frame.min() and frame.max() <= 1.0
        assert obs["paddle_0"][..., -1].max() > 0.5  # drawn (not a black frame)
        obs, rew, term, trunc, _ = env.step({a: random_action(rng=rng) for a in AGENTS})
        if term["__all__"]:
            break
    assert term["__all__"] or (trunc["__all__"] and step == 11)


def _inner_game(joint_env):
    return joint_env.env.par_env.game


def test_joint_wrapper_maps_actions_and_sums_rewards():
    env = JointAgentEnv(make_cooperative_pong({"max_cycles": 300}))
    assert env.possible_agents == ["joint"]
    assert env.get_observation_space("joint") == gym.spaces.Box(-1.0, 1.0, (10,), np.float32)
    assert env.get_action_space("joint") == gym.spaces.MultiDiscrete([3, 3])
    obs, _ = env.reset(seed=0)
    inner = env.env.par_env
    np.testing.assert_array_equal(
        obs["joint"], np.concatenate([inner._observe()[a] for a in AGENTS])
    )
    game = _inner_game(env)
    speed = GAME_DEFAULTS["left_paddle_speed"]
    for joint_action, (d0, d1) in [([1, 2], (-speed, speed)), ([2, 0], (speed, 0)),
                                   ([0, 1], (0, -speed)), ([0, 0], (0, 0))]:
        y0, y1 = game.p0.rects[0].y, game.p1.rects[0].y
        obs, rew, term, trunc, info = env.step({"joint": np.array(joint_action)})
        assert (game.p0.rects[0].y - y0, game.p1.rects[0].y - y1) == (d0, d1)
        assert rew["joint"] == pytest.approx(2 * 100 / 300)
        assert info["joint"]["agent_rewards"] == pytest.approx({a: 100 / 300 for a in AGENTS})
        assert obs["joint"][4] == inner._observe()["paddle_0"][4]
        assert obs["joint"][9] == inner._observe()["paddle_1"][4]
    # Play on at random until the ball is lost: reward is the summed penalty.
    rng = np.random.default_rng(0)
    while not (term["__all__"] or trunc["__all__"]):
        obs, rew, term, trunc, _ = env.step({"joint": rng.integers(3, size=2)})
    assert term == {"joint": True, "__all__": True}
    assert rew["joint"] == pytest.approx(-20.0)
    assert env.get_observation_space("joint").contains(obs["joint"])


def test_joint_wrapper_stacks_images_on_the_channel_axis():
    env = JointAgentEnv(
        make_cooperative_pong({"obs": "pixels", "frame_size": 16, "frame_stack": 2,
                               "max_cycles": 5})
    )
    space = env.get_observation_space("joint")
    assert space.shape == (16, 16, 4) and space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert space.contains(obs["joint"])


class _TinyEnv:
    """Builds a minimal MultiAgentEnv with the given per-agent spaces."""

    def __new__(cls, obs_spaces, act_spaces):
        from ray.rllib.env.multi_agent_env import MultiAgentEnv

        env = MultiAgentEnv()
        env.possible_agents = env.agents = sorted(obs_spaces)
        env.observation_spaces, env.action_spaces = obs_spaces, act_spaces
        return env


@pytest.mark.parametrize(
    "obs_spaces, act_spaces, error, match",
    [
        ({"a": gym.spaces.Box(0, 1, (3,)), "b": gym.spaces.Box(0, 1, (3,))},
         {"a": gym.spaces.Discrete(2), "b": gym.spaces.Box(0, 1, (1,))},
         TypeError, "Discrete action spaces only; agent 'b'"),
        ({"a": gym.spaces.Box(0, 1, (3,)), "b": gym.spaces.Box(0, 1, (4,))},
         {"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(2)},
         ValueError, r"got shapes \{'a': \(3,\), 'b': \(4,\)\}"),
        ({"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(3)},
         {"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(2)},
         TypeError, "agent 'a' has Discrete"),
        ({"a": gym.spaces.Box(0, 1, (4, 4)), "b": gym.spaces.Box(0, 1, (4, 4))},
         {"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(2)},
         ValueError, "1-D vectors or 3-D"),
    ],
)
def test_joint_wrapper_rejects_unsupported_spaces(obs_spaces, act_spaces, error, match):
    with pytest.raises(error, match=match):
        JointAgentEnv(_TinyEnv(obs_spaces, act_spaces))


def test_validation_fills_defaults():
    from ray.rllib.env.env_context import EnvContext

    cfg = validate_pong_config(None)
    assert cfg == {"obs": "features", **GAME_DEFAULTS, "frame": "screen"}
    cfg = validate_pong_config(EnvContext({"obs": "pixels", "max_cycles": 10}, worker_index=1))
    assert (cfg["max_cycles"], cfg["frame_size"], cfg["frame_stack"]) == (10, 42, 4)
    assert validate_pong_config({"ball_speed": np.float32(7.5)})["ball_speed"] == 7.5


@pytest.mark.parametrize(
    "env_config, key, match",
    [
        ({"frame_szie": 42}, "", r"unknown key\(s\) \['frame_szie'\]; allowed: \['obs'"),
        ({"obs": "rgb"}, "obs", r"must be one of \['features', 'pixels'\], got 'rgb'$"),
        ({"max_cycles": "900"}, "max_cycles", r"must be an int >= 1, got '900' \(str\)$"),
        ({"max_cycles": 0}, "max_cycles", r"must be an int >= 1, got 0 \(int\)$"),
        ({"max_cycles": 10.0}, "max_cycles", r"must be an int >= 1, got 10\.0 \(float\)"),
        ({"max_cycles": True}, "max_cycles", r"must be an int >= 1, got True \(bool\)"),
        ({"ball_speed": -1}, "ball_speed", r"must be a finite number > 0, got -1"),
        ({"right_paddle_speed": float("nan")}, "right_paddle_speed", r"must be a finite number > 0, got nan"),
        ({"max_reward": float("inf")}, "max_reward", r"must be a finite number, got inf"),
        ({"cake_paddle": 1}, "cake_paddle", r"must be true or false, got 1 \(int\)"),
        ({"obs": "pixels", "frame_size": 4}, "frame_size", r"must be an int >= 8, got 4"),
        ({"obs": "pixels", "frame_stack": 0}, "frame_stack", r"must be an int >= 1"),
        ({"frame_size": 42}, "frame_size", r"only applies to obs='pixels'"),
        ({"frame": "egocentric"}, "frame", r"must be one of \['screen', 'own_side'\], got 'egocentric'"),
        ({"obs": "pixels", "frame": "own_side"}, "frame", r"only applies to obs='features'"),
        (["obs"], "", "must be a dict"),
    ],
)
def test_validation_errors_name_the_key(env_config, key, match):
    """Keys inside env_config; the registered creators (what RLlib calls) and the experiment loader
    put ``env_config`` in front."""
    assert_env_config_refused(validate_pong_config, make_cooperative_pong, ENV_CREATORS[COOPERATIVE_PONG], env_config, key, match)


def test_scripted_tracker_beats_random_by_a_wide_margin():
    """Measured: tracker 100 per paddle (the ceiling) at max_cycles 300 and 900;
    random 6.7 at max_cycles=300, -3.7 at 900 (mean of 300 episodes)."""
    env = CooperativePongFeatures(max_cycles=300)
    rng = np.random.default_rng(0)
    tracker = [_play(env, lambda o, r: scripted_tracker_action(o), s, rng) for s in range(5)]
    rand = [_play(env, lambda o, r: random_action(o, r), s, rng) for s in range(40)]
    assert min(tracker) == pytest.approx(100.0)
    assert np.mean(rand) < 25.0 and min(tracker) - np.mean(rand) > 60.0
    long_env = CooperativePongFeatures()  # default 900 cycles
    assert _play(long_env, lambda o, r: scripted_tracker_action(o), 0, rng) == pytest.approx(100.0)
    rand900 = np.mean([_play(long_env, lambda o, r: random_action(o, r), s, rng) for s in range(100)])
    assert -7.0 < rand900 < 0.0


def test_register_envs_without_ray_init():
    import ray
    from ray.tune.registry import ENV_CREATOR, _global_registry

    was_running = ray.is_initialized()  # other tests may share a session-wide Ray instance
    assert register_envs() == [COOPERATIVE_PONG, COOPERATIVE_PONG_JOINT, SIMPLE_SPREAD]
    assert register_envs() == [COOPERATIVE_PONG, COOPERATIVE_PONG_JOINT, SIMPLE_SPREAD]  # idempotent
    assert ray.is_initialized() == was_running  # registering never starts Ray
    creator = _global_registry.get(ENV_CREATOR, COOPERATIVE_PONG_JOINT)
    env = creator({"max_cycles": 10})
    assert isinstance(env, JointAgentEnv) and env.possible_agents == ["joint"]
    assert set(ENV_VALIDATORS) == set(ENV_CREATORS) == {COOPERATIVE_PONG, COOPERATIVE_PONG_JOINT, SIMPLE_SPREAD}


def test_env_spaces():
    obs, act, ids = env_spaces(COOPERATIVE_PONG, {"obs": "features"})
    assert ids == AGENTS and obs["paddle_0"].shape == (5,) and act["paddle_1"].n == 3
    obs, act, ids = env_spaces(COOPERATIVE_PONG_JOINT, {"obs": "pixels", "frame_stack": 3})
    assert ids == ["joint"] and obs["joint"].shape == (42, 42, 6)
    assert act["joint"] == gym.spaces.MultiDiscrete([3, 3])
    with pytest.raises(ConfigError, match=r"^env: must be one of \['rllib_quantum/cooperative_pong', .*got 'pong'$") as info:
        env_spaces("pong", {})
    assert info.value.key == "env"
    with pytest.raises(ConfigError, match=r"^env_config\.max_cycles: must be an int >= 1, got -5") as info:
        env_spaces(COOPERATIVE_PONG, {"max_cycles": -5})
    assert info.value.key == "env_config.max_cycles"
