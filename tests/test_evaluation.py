"""Evaluation episodes: the game's own returns on fresh seeds, checked against known policies."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.core.rl_module.torch import TorchRLModule

from rllib_quantum import load_experiment
from rllib_quantum.envs import reference_returns, scripted_tracker_action
from rllib_quantum.evaluation import EVAL_SEED_BASE, eval_seeds, evaluate_modules

CONFIG = "configs/quantum_independent_pong_features.yaml"


class TrackerModule(TorchRLModule):
    """The scripted ball tracker as an RLModule: logits +10 on the tracker's action."""

    def setup(self):
        pass

    def _forward(self, batch, **kwargs):
        obs = batch[Columns.OBS].numpy()
        actions = torch.as_tensor([scripted_tracker_action(o) for o in obs])
        return {Columns.ACTION_DIST_INPUTS: torch.nn.functional.one_hot(actions, 3).float() * 10.0}

    def get_inference_action_dist_cls(self):
        return TorchCategorical


class UniformModule(TrackerModule):
    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: torch.zeros(len(batch[Columns.OBS]), 3)}


def _modules(cls):
    space = gym.spaces.Box(-1, 1, (5,), np.float32)
    return {m: cls(observation_space=space, action_space=gym.spaces.Discrete(3)) for m in ("paddle_0", "paddle_1")}


def test_tracker_scores_the_ceiling_on_every_fresh_episode():
    exp = load_experiment(CONFIG)
    report = evaluate_modules(exp, _modules(TrackerModule), episodes=3)
    assert report.seeds == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1, EVAL_SEED_BASE + 2]
    assert report.lengths == [900, 900, 900]
    for agent in ("paddle_0", "paddle_1"):
        assert report.returns[agent] == pytest.approx([100.0] * 3)
        assert report.ci95(agent) == pytest.approx(0.0, abs=1e-9)
    assert "greedy actions, 3 episodes" in report.summary()
    assert reference_returns(exp.plan.env, exp.spec["env_config"])["scripted tracker (ceiling)"] == 100.0


def test_random_play_scores_near_the_random_reference_and_seeds_differ_by_experiment_seed():
    exp = load_experiment(CONFIG, {"seed": 3})
    torch.manual_seed(0)
    report = evaluate_modules(exp, _modules(UniformModule), episodes=30, greedy=False)
    assert report.seeds == eval_seeds(30, 3) and report.seeds[0] == EVAL_SEED_BASE + 3000
    mean = report.mean("paddle_0")
    assert -8.0 < mean < 2.0, mean  # random play: about -3.7 per paddle
    assert report.returns["paddle_0"] == report.returns["paddle_1"]  # the game's rewards are shared
    assert report.ci95("paddle_0") > 0


def test_greedy_evaluation_is_reproducible_and_validates_episodes():
    exp = load_experiment(CONFIG, {"env_config.max_cycles": 200})
    modules = exp.build_modules()
    first = evaluate_modules(exp, modules, episodes=2)
    assert first.returns == evaluate_modules(exp, modules, episodes=2).returns
    assert reference_returns(exp.plan.env, exp.spec["env_config"]) == {}  # not the default game
    with pytest.raises(ValueError, match="episodes must be >= 1, got 0"):
        evaluate_modules(exp, modules, episodes=0)


@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True), (False, False)])
def test_box_actions_reach_the_env_as_rllibs_env_runners_send_them(normalize, clip):
    """Gaussian means are in the policy's [-1, 1] frame; with RLlib's default normalize_actions the
    env (mpe2 continuous actions, bounds [0, 1]) gets them unsquashed, as in training."""
    from rllib_quantum.evaluation import EvaluationSetup, _act

    exp = load_experiment("configs/quantum_independent_spread.yaml", {"env_config.N": 2, "env_config.continuous_actions": True})
    modules = exp.build_modules()
    means = torch.tensor([-1.0, -0.5, 0.0, 0.5, 3.0])  # one beyond the frame
    for module in modules.values():
        with torch.no_grad():
            module.actor_head.weight.zero_()
            module.actor_head.bias.copy_(means)
    setup = EvaluationSetup.of(exp)
    assert (setup.normalize_actions, setup.clip_actions) == (True, False)  # RLlib's defaults
    setup = dataclasses.replace(setup, normalize_actions=normalize, clip_actions=clip)
    obs = {f"agent_{i}": np.zeros(modules[f"agent_{i}"].observation_space.shape, np.float32) for i in range(2)}
    actions = _act(obs, modules, exp.plan.policy_mapping_fn, True, setup)
    expected = {True: [0.0, 0.25, 0.5, 0.75, 1.0], False: [0.0, 0.0, 0.0, 0.5, 1.0]}[normalize] if (normalize or clip) else means.tolist()
    for action in actions.values():
        np.testing.assert_allclose(action, expected, atol=1e-6)


def test_episodes_played_side_by_side_equal_one_after_another():
    """Greedy returns and lengths do not depend on how many episodes share a forward pass: six
    episodes over four envs (two envs start a second episode) against one env at a time, in seed order."""
    exp = load_experiment(CONFIG, {"env_config.max_cycles": 300, "seed": 7})
    modules = exp.build_modules()
    alone = evaluate_modules(exp, modules, episodes=6, envs_at_once=1)
    together = evaluate_modules(exp, modules, episodes=6, envs_at_once=4)
    assert together.seeds == alone.seeds == eval_seeds(6, 7)
    assert together.lengths == alone.lengths and together.returns == alone.returns
    assert len(set(alone.lengths)) > 1  # episodes of different lengths: slots free up at different steps
    with pytest.raises(ValueError, match="envs_at_once must be an int >= 1, got 0"):
        evaluate_modules(exp, modules, episodes=2, envs_at_once=0)


def test_sampled_evaluation_repeats_and_leaves_the_callers_generator_alone():
    exp = load_experiment(CONFIG, {"env_config.max_cycles": 200})
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = evaluate_modules(exp, _modules(UniformModule), episodes=4, greedy=False)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's draws are as if nothing ran
    assert evaluate_modules(exp, _modules(UniformModule), episodes=4, greedy=False).returns == first.returns
