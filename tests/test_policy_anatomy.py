"""``benchmarks/policy_anatomy.py``: its intercept prediction against the real game, and a run on a
real (tiny) checkpoint that prints every table."""

import re
import sys

import numpy as np
import pytest

from _helpers import ROOT, run_script
from tests._tiny import tiny

sys.path.insert(0, str(ROOT / "benchmarks"))
import policy_anatomy  # noqa: E402


def test_intercept_prediction_matches_the_game():
    """Predicted where the ball meets each paddle (at most 25 steps ahead) against the ball's y in
    the game's last approaching step, tracker play, 10 seeds: close on average (the right paddle's
    outer cake tiers are met a few steps later than predicted, so single rallies can be off)."""
    from rllib_quantum.envs import CooperativePongFeatures, scripted_tracker_action

    errors = []
    for seed in range(10):
        env = CooperativePongFeatures()
        obs, _ = env.reset(seed=seed)
        pending, previous = {}, obs
        while env.agents:
            for agent, o in obs.items():
                if agent not in pending and 1 <= policy_anatomy.steps_to_paddle(o, agent) <= 25:
                    pending[agent] = policy_anatomy.intercept_y(o, agent)
            previous = obs
            obs, *_ = env.step({a: scripted_tracker_action(o) for a, o in obs.items()})
            for agent in list(pending):
                if obs[agent][2] * policy_anatomy.SIDE[agent] <= 0 or not env.agents:  # turned, or the rally ended
                    errors.append(abs(previous[agent][1] - pending.pop(agent)))
    assert len(errors) > 50
    assert np.mean(errors) < 0.1 and np.median(errors) < 0.06, (np.mean(errors), np.median(errors))
    # Away-flying balls: no arrival; the intercept is then the ball's y now.
    away = np.array([0.0, 0.3, 0.5, 0.2, 0.0], np.float32)  # vx > 0: toward paddle_1, away from paddle_0
    assert policy_anatomy.steps_to_paddle(away, "paddle_0") == np.inf
    assert policy_anatomy.intercept_y(away, "paddle_0") == pytest.approx(0.3)


def test_own_side_observations_go_back_to_the_screen_frame():
    """A checkpoint trained with ``frame: own_side`` is played in its own frame; the tables read the
    screen frame (the geometry's), which ``to_screen_frame`` restores exactly."""
    from rllib_quantum.envs import make_parallel_pong

    screen, own = make_parallel_pong({}), make_parallel_pong({"frame": "own_side"})
    obs_s, _ = screen.reset(seed=4)
    obs_o, _ = own.reset(seed=4)
    for _ in range(30):
        for agent in obs_s:
            np.testing.assert_array_equal(policy_anatomy.to_screen_frame(obs_o[agent], agent, "own_side"), obs_s[agent])
            np.testing.assert_array_equal(policy_anatomy.to_screen_frame(obs_s[agent], agent, "screen"), obs_s[agent])
        assert not np.array_equal(obs_o["paddle_1"], obs_s["paddle_1"])
        obs_s, *_ = screen.step({"paddle_0": 1, "paddle_1": 2})
        obs_o, *_ = own.step({"paddle_0": 1, "paddle_1": 2})


def test_anatomy_of_a_checkpoint(build_algo, tmp_path):
    from rllib_quantum import load_experiment

    exp = load_experiment("configs/quantum_independent_pong_features.yaml",
                          tiny("quantum", **{"env_config.max_cycles": 120}))
    algo = build_algo(exp.algo_config)
    algo.train()
    checkpoint = algo.save_to_path(str(tmp_path / "checkpoint"))
    out = run_script("benchmarks/policy_anatomy.py", ["--checkpoint", checkpoint, "--episodes", "2"], tmp_path, timeout=120)
    for mode in ("sampled", "greedy"):
        assert re.search(rf"^## {mode} actions: 2 episodes, mean length \d+ of 120", out, re.M), out[-3000:]
    rows = re.findall(r"^\| (approaching, <= 25 steps|approaching, later|receding) \| (\d+)% \| ([0-9.]+) \|", out, re.M)
    assert rows and all(0 <= float(p) <= 1 for *_, p in rows), out[-3000:]
    assert out.count("tracking curve, deciding states") in (0, 4)  # two curves per mode when the ball approached
    fits = re.findall(r"^log P\(up\)/P\(down\) ~ linear in the features, all steps: ball_x [-+][0-9.]+, .*"
                      r"paddle_y [-+][0-9.]+, constant [-+][0-9.]+; explains -?\d+% of its variance$", out, re.M)
    assert len(fits) == 2, out[-3000:]  # one per mode


def test_anatomy_refuses_a_missing_checkpoint(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "benchmarks/policy_anatomy.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--checkpoint PATH is required" in proc.stderr
