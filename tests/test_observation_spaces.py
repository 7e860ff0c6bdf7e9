"""Observation spaces beyond vectors: one-hots, Dict/Tuple, uint8 frames, small grids; checked
against gymnasium's own flattening, and trained through RLlib on an env we did not write."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.spaces.utils import flatten

from ray.rllib.core.columns import Columns
from rllib_quantum import QuantumPPORLModule, with_quantum_policies
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules.observations import ObservationFlattener, encoder_input_shape

from _tiny import swapped_gym_config

FLAT_SPACES = {
    "discrete": gym.spaces.Discrete(4),
    "discrete-start": gym.spaces.Discrete(3, start=-1),
    "multidiscrete": gym.spaces.MultiDiscrete([2, 3]),
    "multibinary": gym.spaces.MultiBinary(3),
    "box-2d": gym.spaces.Box(-1, 1, (2, 3)),
    "box-scalar": gym.spaces.Box(-1, 1, ()),  # shape (): a batch is (B,)
    "dict-scalars": gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, ()), "v": gym.spaces.Box(-2, 2, ())}),
    "dict": gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,)), "room": gym.spaces.Discrete(3)}),
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (3,)))),
    "nested": gym.spaces.Dict({"a": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.MultiBinary(2)))}),
}


def _batch(space, samples):
    """A batch the way RLlib hands it to a module: tensors, nested like the space."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _batch(s, [x[k] for x in samples]) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_batch(s, [x[i] for x in samples]) for i, s in enumerate(space.spaces))
    return torch.as_tensor(np.stack([np.asarray(x) for x in samples]))


@pytest.mark.parametrize("name", list(FLAT_SPACES))
def test_flattening_equals_gymnasium_flatten(name):
    space = FLAT_SPACES[name]
    space.seed(0)
    samples = [space.sample() for _ in range(5)]
    ours = ObservationFlattener(space)(_batch(space, samples))
    theirs = np.stack([flatten(space, x) for x in samples]).astype(np.float32)
    assert encoder_input_shape(space) == (theirs.shape[1],)
    np.testing.assert_allclose(ours.numpy(), theirs)


def _module(space, actions=gym.spaces.Discrete(3), **model_config):
    return QuantumPPORLModule(
        observation_space=space, action_space=actions,
        model_config={"circuit": {"n_qubits": 4, "n_layers": 1}, **model_config},
    )


@pytest.mark.parametrize("name", list(FLAT_SPACES))
def test_module_takes_flat_spaces(name):
    space = FLAT_SPACES[name]
    module = _module(space)
    batch = {Columns.OBS: _batch(space, [space.sample() for _ in range(6)])}
    out = module.forward_train(batch)
    assert out[Columns.ACTION_DIST_INPUTS].shape == (6, 3)
    assert module.compute_values(batch).shape == (6,)
    expected = "none" if encoder_input_shape(space)[0] <= 4 else "linear"
    assert module.resolved_model_config["encoder"] == expected


@pytest.mark.parametrize("shape", [(84, 84, 3), (42, 42, 4), (7, 7, 3), (3, 3, 1), (2, 5, 2), (1, 1, 3)])
def test_auto_encoder_fits_images_of_any_size_and_dtype(shape):
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    module = _module(space)
    filters = module.resolved_model_config["conv_filters"]
    if shape[0] >= 42:
        assert filters == [[16, 8, 4], [32, 4, 2]]  # the default fits: kept
    else:
        assert all(k <= min(shape[:2]) for _, k, _ in filters)
    frames = torch.as_tensor(np.stack([space.sample() for _ in range(2)]))
    assert module.forward_inference({Columns.OBS: frames})[Columns.ACTION_DIST_INPUTS].shape == (2, 3)
    # uint8 pixels are scaled into [0, 1] before the CNN.
    assert float(module.flatten(torch.full((1, *shape), 255, dtype=torch.uint8)).max()) == 1.0


def test_explicit_filters_that_do_not_fit_and_unsupported_spaces_are_refused():
    with pytest.raises(ConfigError) as info:
        _module(gym.spaces.Box(0, 1, (7, 7, 3)), conv_filters=[[16, 8, 4]])
    assert info.value.key == "conv_filters" and "shape (7, 7, 3)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _module(gym.spaces.Text(5))
    assert info.value.key == "observation_space" and "Dict, Tuple" in str(info.value)


def test_swap_in_on_frozen_lake_with_discrete_observations(build_algo):
    """RLlib's `make_multi_agent` on gymnasium's FrozenLake (Discrete(16) observations), the usual
    `.multi_agent(policies={...}, policy_mapping_fn=...)` config, one swap call, one iteration."""
    config = swapped_gym_config("FrozenLake-v1", n_qubits=4)
    algo = build_algo(config)
    result = algo.train()
    assert result["learners"]["p0"]["num_module_steps_trained"] > 0
    module = algo.get_module("p0")
    assert module.resolved_model_config["encoder"] == "linear"  # 16 one-hot numbers -> 4 qubits


# ---- action masks (PettingZoo classic style: {"observation": ..., "action_mask": ...}) ----------
MASKED = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (4,), np.float32), "action_mask": gym.spaces.MultiBinary(3)})


def _masked_batch(rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(rows, 3, generator=g) < 0.5).to(torch.int8)
    mask[torch.arange(rows), torch.randint(0, 3, (rows,), generator=g)] = 1  # at least one legal action
    return {Columns.OBS: {"observation": torch.rand(rows, 4, generator=g) * 2 - 1, "action_mask": mask}}


def test_action_mask_masks_logits_and_is_not_an_input():
    module = _module(MASKED)
    assert module.quantum_config.action_mask_keys == ("observation",) and module.quantum_config.input_shape == (4,)
    batch = _masked_batch(64)
    mask = batch[Columns.OBS]["action_mask"].bool()
    for method in ("forward_exploration", "forward_inference", "forward_train"):
        logits = getattr(module, method)(batch)[Columns.ACTION_DIST_INPUTS]
        assert torch.isfinite(logits).all()
        dist = module.get_exploration_action_dist_cls().from_logits(logits)
        actions = torch.stack([dist.sample() for _ in range(50)])
        assert mask.gather(1, actions.T).all(), method  # only legal actions are ever sampled
        assert mask.gather(1, dist.to_deterministic().sample()[:, None]).all()
        assert torch.isfinite(dist.entropy()).all() and torch.isfinite(dist.logp(actions[0])).all()
    # the mask changes the logits only where it is 0; the observation alone decides the rest
    unmasked = {Columns.OBS: {"observation": batch[Columns.OBS]["observation"], "action_mask": torch.ones(64, 3, dtype=torch.int8)}}
    free = module.forward_inference(unmasked)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS][mask], free[mask])
    assert module.compute_values(batch).shape == (64,)
    # a mask that does not match the action space is an ordinary input
    plain = _module(MASKED, actions=gym.spaces.Discrete(4))
    assert plain.quantum_config.action_mask_keys is None and plain.quantum_config.input_shape == (7,)


def test_stacked_masked_modules_equal_each_module():
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rllib_quantum.modules import StackedQuantumMultiRLModule

    specs = {f"p{i}": RLModuleSpec(module_class=QuantumPPORLModule, observation_space=MASKED, action_space=gym.spaces.Discrete(3),
                                   model_config={"circuit": {"n_qubits": 4, "n_layers": 1}, "seed": 0, "module_id": f"p{i}"})
             for i in range(3)}
    stacked = MultiRLModuleSpec(multi_rl_module_class=StackedQuantumMultiRLModule, rl_module_specs=specs).build()
    plain = MultiRLModuleSpec(multi_rl_module_class=MultiRLModule, rl_module_specs=specs).build()
    plain.set_state(stacked.get_state())
    batch = {mid: _masked_batch(5 + i, seed=i) for i, mid in enumerate(specs)}  # unequal rows
    assert stacked.stack_groups(list(specs)) == [list(specs)]
    got, want = stacked.forward_train(batch), plain.forward_train(batch)
    for mid in specs:
        a, b = got[mid][Columns.ACTION_DIST_INPUTS], want[mid][Columns.ACTION_DIST_INPUTS]
        mask = batch[mid][Columns.OBS]["action_mask"].bool()
        torch.testing.assert_close(a[mask], b[mask], atol=2e-6, rtol=1e-5)
        assert (a[~mask] < -1e30).all() and (b[~mask] < -1e30).all()


class _MaskedChoice(gym.Env):
    """Pick a legal action; illegal ones are counted (in this process: the test samples locally)."""

    observation_space = MASKED
    action_space = gym.spaces.Discrete(3)
    steps, illegal = 0, 0

    def reset(self, *, seed=None, options=None):
        self.rng, self.t = np.random.default_rng(seed), 0
        return self._obs(), {}

    def _obs(self):
        mask = (self.rng.random(3) < 0.5).astype(np.int8)
        mask[self.rng.integers(3)] = 1
        self.mask = mask
        return {"observation": self.rng.uniform(-1, 1, 4).astype(np.float32), "action_mask": mask}

    def step(self, action):
        _MaskedChoice.steps += 1
        _MaskedChoice.illegal += int(not self.mask[action])
        self.t += 1
        return self._obs(), float(action), False, self.t >= 20, {}


def test_swap_in_trains_on_a_masked_env_without_an_illegal_action(build_algo):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env import make_multi_agent
    from ray.tune.registry import register_env

    register_env("rllib_quantum_test/masked_choice", make_multi_agent(lambda config: _MaskedChoice()))
    config = (
        PPOConfig()
        .environment("rllib_quantum_test/masked_choice", env_config={"num_agents": 2},
                     disable_env_checking=True)  # RLlib's checker steps with random, unmasked actions
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *args, **kwargs: f"p{aid}")
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    algo = build_algo(with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}))
    _MaskedChoice.steps = _MaskedChoice.illegal = 0
    result = algo.train()
    assert _MaskedChoice.steps >= 200 and _MaskedChoice.illegal == 0
    for mid in ("p0", "p1"):
        assert algo.get_module(mid).quantum_config.action_mask_keys == ("observation",)
        assert result["learners"][mid]["num_module_steps_trained"] > 0
    # the package's evaluation plays the same env with Dict observations, greedy and sampled
    from rllib_quantum.evaluation import EvaluationSetup, evaluate_modules

    modules = {mid: algo.learner_group._learner.module[mid] for mid in ("p0", "p1")}
    setup = EvaluationSetup("rllib_quantum_test/masked_choice", {"num_agents": 2}, config.policy_mapping_fn)
    _MaskedChoice.steps = _MaskedChoice.illegal = 0
    for greedy in (True, False):
        report = evaluate_modules(setup, modules, episodes=2, greedy=greedy)
        assert sorted(report.returns) == [0, 1] and all(len(r) == 2 for r in report.returns.values())
    assert _MaskedChoice.steps == 2 * 2 * 20 * 2 and _MaskedChoice.illegal == 0


_TTT_MOVES = []  # (legal,) per move, appended by the env in this process (the runner is local)


def _counting_tictactoe(config):
    from pettingzoo.classic import tictactoe_v3
    from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv

    class Counting(PettingZooEnv):
        def step(self, action):
            for agent, a in action.items():
                _TTT_MOVES.append(bool(self.env.observe(agent)["action_mask"][a]))
            return super().step(action)

    return Counting(tictactoe_v3.env())


def test_swap_in_on_pettingzoo_tictactoe_makes_no_illegal_move(build_algo):
    """PettingZoo's classic tic-tac-toe (AEC, observation {"observation": 3x3x2, "action_mask": 9})
    through RLlib's PettingZooEnv: the board goes to the auto CNN, and every move is legal."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    register_env("rllib_quantum_test/tictactoe", _counting_tictactoe)
    config = (
        PPOConfig()
        .environment("rllib_quantum_test/tictactoe", disable_env_checking=True)
        .multi_agent(policies={"player_1", "player_2"}, policy_mapping_fn=lambda aid, *args, **kwargs: aid)
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    algo = build_algo(with_quantum_policies(config, circuit={"n_qubits": 5, "n_layers": 1}))
    _TTT_MOVES.clear()
    algo.train()
    cfg = algo.get_module("player_1").quantum_config
    assert cfg.action_mask_keys == ("observation",) and cfg.encoder == "cnn" and cfg.input_shape == (3, 3, 2)
    assert len(_TTT_MOVES) >= 200 and all(_TTT_MOVES)
