"""Observation spaces beyond vectors: one-hots, Dict/Tuple, uint8 frames, small grids; checked
against gymnasium's own flattening, and trained through RLlib on an env we did not write."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.spaces.utils import flatten

from ray.rllib.core.columns import Columns
from rllib_quantum import QuantumPPORLModule
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
