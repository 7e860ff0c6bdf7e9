"""QuantumModelConfig: the one resolved, frozen form of a quantum module's model_config."""

import dataclasses
import json
import pickle
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.config import load_experiment
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules import ActionHead, QuantumModelConfig, QuantumPPORLModule, spec_model_config, validate_model_config
from rllib_quantum.strategies import module_spec
from rllib_quantum.swap import with_quantum_policies

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VEC5 = gym.spaces.Box(-1, 1, (5,), np.float32)
VEC12 = gym.spaces.Box(-1, 1, (12,), np.float32)
IMG42 = gym.spaces.Box(0, 1, (42, 42, 4), np.float32)
IMG7 = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
D3 = gym.spaces.Discrete(3)
MD33 = gym.spaces.MultiDiscrete([3, 3])
BOX2 = gym.spaces.Box(-2, 2, (2,), np.float32)

CASES = [
    (VEC5, D3, {"circuit": {"n_qubits": 5, "n_layers": 2}}),
    (VEC12, D3, {"critic_hiddens": [8], "lr_multipliers": {"classical": 0.1}}),
    (IMG42, MD33, {"critic": "quantum", "critic_circuit": {"n_layers": 1, "ansatz": "hardware_efficient"}}),
    (IMG7, D3, {}),  # auto encoder: the default filters clipped to the small frame
    (VEC5, BOX2, {"circuit": {"n_qubits": 5}, "readout": "linear", "module_id": "p0", "seed": 3}),
    (VEC5, D3, {"circuit": {"n_qubits": 5, "observables": "Z+ZZ"}, "critic": "quantum"}),
    (gym.spaces.Dict({"a": gym.spaces.Discrete(4), "b": VEC5}), D3, {"encoder": "linear"}),
]


@pytest.mark.parametrize("obs, act, model_config", CASES)
def test_from_dict_to_dict_from_dict_round_trips_to_an_equal_object(obs, act, model_config):
    cfg = QuantumModelConfig.from_dict(model_config, obs, act)
    plain = cfg.to_dict()
    assert json.loads(json.dumps(plain)) == plain  # plain data: RLlib stores and ships it, checkpoints hold it
    again = QuantumModelConfig.from_dict(plain, obs, act)
    assert again == cfg and hash(again) == hash(cfg)
    assert again.to_dict() == plain
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # travels to Ray workers with the module


def test_equal_dicts_give_equal_objects_and_differences_show():
    a = QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5}, "critic_hiddens": [8, 8]}, VEC5, D3)
    b = QuantumModelConfig.from_dict({"critic_hiddens": (8, 8), "circuit": {"n_qubits": 5}}, VEC5, D3)
    assert a == b and hash(a) == hash(b)
    assert a != QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5}, "critic_hiddens": [8]}, VEC5, D3)
    assert a != QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5}, "critic_hiddens": [8, 8]}, VEC5, MD33)


def test_the_object_is_frozen_and_its_multipliers_read_only():
    cfg = QuantumModelConfig.from_dict({}, VEC5, D3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.readout = "linear"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.actor.n_qubits = 7
    with pytest.raises(TypeError):
        cfg.lr_multipliers["circuit"] = 0.0
    assert isinstance(cfg.conv_filters, tuple) and isinstance(cfg.critic_hiddens, tuple)


def test_resolved_fields():
    cfg = QuantumModelConfig.from_dict({"circuit": {"n_qubits": 4}, "critic": "quantum"}, IMG7, MD33)
    assert (cfg.encoder, cfg.input_shape, cfg.readout) == ("cnn", (7, 7, 3), "linear")  # 6 logits > 4 qubits
    assert cfg.conv_filters == ((16, 3, 1), (32, 3, 1))
    assert cfg.actor.n_outputs == 4 and cfg.critic_circuit.n_outputs == 4
    assert cfg.action_head == ActionHead("multi_categorical", (3, 3)) and cfg.action_head.n_logits == 6
    assert cfg.critic_hiddens == ()  # no MLP critic
    vec = QuantumModelConfig.from_dict({}, gym.spaces.Box(-1, 1, (3,), np.float32), BOX2)
    assert (vec.encoder, vec.conv_filters, vec.readout, vec.actor.n_outputs) == ("none", (), "expval", 2)
    assert vec.action_head == ActionHead("diag_gaussian", (2,)) and vec.critic_circuit is None


def test_correlator_readouts_resolve_to_a_linear_head_and_refuse_expval():
    cfg = QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5, "observables": "Z+ZZ"}, "critic": "quantum"}, VEC5, D3)
    assert cfg.readout == "linear"  # auto: 3 logits would fit 5 wires, but 15 read-outs do not
    assert (cfg.actor.n_readouts, cfg.critic_circuit.n_readouts) == (15, 15)
    with pytest.raises(ConfigError, match=r"model_config\.readout: 'expval' reads one <Z> per logit.*'Z\+ZZ'"):
        QuantumModelConfig.from_dict(
            {"circuit": {"n_qubits": 5, "observables": "Z+ZZ"}, "readout": "expval"}, VEC5, D3, prefix="model_config"
        )
    with pytest.raises(ConfigError, match=r"model_config\.circuit\.observables: must be one of \['Z', 'Z\+ZZ'\], got 'ZZ'"):
        QuantumModelConfig.from_dict({"circuit": {"observables": "ZZ"}}, VEC5, D3, prefix="model_config")


def test_numpy_integers_in_lists_become_ints():
    cfg = QuantumModelConfig.from_dict(
        {"circuit": {"n_qubits": np.int64(4)}, "critic_hiddens": [np.int64(32), np.int32(16)], "conv_filters": [[np.int64(8), 3, 1]]},
        IMG7, MD33,
    )
    assert cfg.critic_hiddens == (32, 16) and cfg.conv_filters == ((8, 3, 1),)
    assert all(type(v) is int for v in cfg.critic_hiddens + cfg.conv_filters[0])
    vec = QuantumModelConfig.from_dict({"critic_hiddens": [np.int64(32)]}, gym.spaces.Box(-1, 1, (3,), np.float32), BOX2)
    assert vec.critic_hiddens == (32,) and type(vec.critic_hiddens[0]) is int
    assert type(vec.actor.n_qubits) is int


def test_module_from_a_strategies_spec_holds_the_builders_object():
    user = {"circuit": {"n_qubits": 5, "n_layers": 1}, "critic": "quantum", "lr_multipliers": {"circuit": 2.0}}
    expected = QuantumModelConfig.from_dict(user, VEC12, MD33, module_id="paddle_0", seed=3)
    spec = module_spec("quantum", user, VEC12, MD33, module_id="paddle_0", seed=3)
    assert spec.model_config == expected.to_dict()
    module = spec.build()
    assert module.quantum_config == expected
    assert module.module_id == "paddle_0" and module.lr_multipliers["circuit"] == 2.0
    assert module.resolved_model_config == expected.to_dict()
    # RLlib merges the algorithm's model_config (PPO adds vf_share_layers) under the spec's: same object.
    merged = QuantumPPORLModule(observation_space=VEC12, action_space=MD33,
                                model_config=PPOConfig().model_config | spec.model_config)
    assert merged.quantum_config == expected


def test_module_from_a_swap_in_spec_holds_the_builders_object():
    user = {"circuit": {"n_qubits": 5, "n_layers": 1}, "readout": "linear"}
    config = (
        PPOConfig()
        .environment(observation_space=VEC5, action_space=D3)
        .multi_agent(policies={"paddle_0", "paddle_1"}, policy_mapping_fn=lambda aid, *a, **k: aid)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            "paddle_0": RLModuleSpec(observation_space=VEC5, action_space=D3),  # spaces known now
            "paddle_1": RLModuleSpec(),  # spaces inferred by RLlib later
        }))
        .debugging(seed=7)
    )
    specs = with_quantum_policies(config, **user).rl_module_spec.rl_module_specs
    known = QuantumModelConfig.from_dict(user, VEC5, D3, module_id="paddle_0", seed=7)
    assert specs["paddle_0"].model_config == known.to_dict()
    assert specs["paddle_0"].build().quantum_config == known
    later = specs["paddle_1"]
    assert later.model_config["encoder"] == "auto"  # checked now, resolved by the module
    built = QuantumPPORLModule(observation_space=VEC5, action_space=D3, model_config=later.model_config)
    assert built.quantum_config == QuantumModelConfig.from_dict(user, VEC5, D3, module_id="paddle_1", seed=7)


@pytest.mark.parametrize("key", sorted(f.name for f in dataclasses.fields(DefaultModelConfig) if f.name != "conv_filters"))
def test_rllib_default_model_config_keys_are_tolerated_and_ignored(key):
    value = dataclasses.asdict(DefaultModelConfig())[key]
    assert QuantumModelConfig.from_dict({key: value}, VEC5, D3) == QuantumModelConfig.from_dict({}, VEC5, D3)


@pytest.mark.parametrize("key, hint", [
    ("fcnet_hiddens", "the classical critic's layers are critic_hiddens"),
    ("use_lstm", "quantum modules are feed-forward: RLlib's LSTM wrapper does not apply to them"),
    ("vf_share_layers", "critic: 'classical' already reads the encoder's output"),
    ("fcnet_activation", None),
])
def test_rllib_keys_written_as_a_quantum_modules_options_are_refused(key, hint):
    """Where a user writes a quantum module's options (YAML model_config, with_quantum_policies'
    keywords, module_spec) an RLlib key would be silently ignored: refused, naming what to use."""
    message = rf"^model_config\.{key}: is a key of RLlib's own modules' model_config, which quantum modules do not read"
    message += rf" \({re.escape(hint)}" if hint else "; allowed: "
    for check in (lambda: validate_model_config({key: True}, prefix="model_config"),
                  lambda: spec_model_config({key: True}, VEC5, D3, prefix="model_config"),
                  lambda: spec_model_config({key: True}, prefix="model_config"),
                  lambda: with_quantum_policies(PPOConfig().environment(observation_space=VEC5, action_space=D3), **{key: True})):
        with pytest.raises(ConfigError, match=message) as info:
            check()
        assert info.value.key == f"model_config.{key}"
    with pytest.raises(ConfigError, match=rf"quantum_independent_pong_features\.yaml: model_config\.{key}: is a key of RLlib's") as info:
        load_experiment(CONFIGS / "quantum_independent_pong_features.yaml", {f"model_config.{key}": True})
    assert info.value.key == f"model_config.{key}"


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"^unknown key\(s\) \['fcnet_hidden'\]; allowed: \['circuit'") as info:
        QuantumModelConfig.from_dict({"fcnet_hidden": [8], "fcnet_hiddens": [8]}, VEC5, D3)
    assert info.value.key == ""
    with pytest.raises(ConfigError, match=r"^model_config: unknown key\(s\) \['colour'\]") as info:
        QuantumModelConfig.from_dict({"colour": "blue"}, VEC5, D3, prefix="model_config")
    assert info.value.key == "model_config"
    with pytest.raises(ConfigError, match=r"^seed: must be an int, got 'x'"):
        QuantumModelConfig.from_dict({"seed": "x"}, VEC5, D3)


def test_validate_model_config_is_the_same_check_returning_the_users_keys():
    plain = validate_model_config({"circuit": {"n_qubits": 5}}, VEC5, D3)
    assert plain["encoder"] == "auto" and plain["readout"] == "auto"
    assert QuantumModelConfig.from_dict(plain, VEC5, D3) == QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5}}, VEC5, D3)
