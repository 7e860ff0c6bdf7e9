"""QuantumPPORLModule: shapes, gradients, critic variants, inference-only copies, bad input."""

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rllib_quantum.modules import QuantumPPORLModule, validate_model_config
from rllib_quantum.errors import ConfigError

VEC5 = gym.spaces.Box(-1, 1, (5,), np.float32)
VEC12 = gym.spaces.Box(-1, 1, (12,), np.float32)
IMG = gym.spaces.Box(0, 1, (42, 42, 4), np.float32)
D3 = gym.spaces.Discrete(3)
MD33 = gym.spaces.MultiDiscrete([3, 3])


def make(obs=VEC5, act=D3, **model_config):
    model_config.setdefault("circuit", {"n_qubits": 5, "n_layers": 2})
    return QuantumPPORLModule(observation_space=obs, action_space=act, model_config=model_config)


@pytest.mark.parametrize(
    "obs, act, model_config, encoder, readout, n_logits",
    [
        (VEC5, D3, {}, "none", "expval", 3),
        (gym.spaces.Box(-1, 1, (3,), np.float32), D3, {}, "none", "expval", 3),
        (VEC12, D3, {}, "linear", "expval", 3),
        (IMG, D3, {}, "cnn", "expval", 3),
        (VEC5, MD33, {}, "none", "linear", 6),
        (VEC5, D3, {"readout": "linear", "critic": "quantum"}, "none", "linear", 3),
        (IMG, MD33, {"critic": "quantum", "circuit": {"n_qubits": 4, "n_layers": 1, "ansatz": "hardware_efficient"}}, "cnn", "linear", 6),
        (VEC5, D3, {"critic": "quantum", "circuit": {"n_qubits": 5, "n_layers": 2, "observables": "Z+ZZ"}}, "none", "linear", 3),
        (VEC5, D3, {"readout": "linear", "circuit": {"n_qubits": 5, "n_layers": 2, "ansatz": "controlled_rotations"}}, "none", "linear", 3),
    ],
)
def test_forward_shapes_and_gradients_reach_every_parameter(obs, act, model_config, encoder, readout, n_logits):
    module = make(obs, act, **model_config)
    assert module.resolved_model_config["encoder"] == encoder
    assert module.resolved_model_config["readout"] == readout
    batch = {Columns.OBS: torch.as_tensor(np.stack([obs.sample() for _ in range(6)]))}

    out = module.forward_train(batch)
    logits = out[Columns.ACTION_DIST_INPUTS]
    assert logits.shape == (6, n_logits) and logits.dtype == torch.float32
    values = module.compute_values(batch, embeddings=out[Columns.EMBEDDINGS])
    assert values.shape == (6,)
    # The GAE connector calls compute_values without embeddings: same numbers.
    torch.testing.assert_close(module.compute_values(batch), values)

    dist = module.get_train_action_dist_cls().from_logits(logits)
    actions = dist.sample()
    assert all(act.contains(a) for a in actions.numpy())
    loss = -dist.logp(actions).mean() + values.pow(2).mean()
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"

    inference = module.forward_inference(batch)
    torch.testing.assert_close(inference[Columns.ACTION_DIST_INPUTS], logits)


def test_parameter_counts_split_quantum_and_classical():
    module = make(critic_hiddens=[8])
    counts = module.parameter_counts()
    # 2 layers x 5 wires x 3 Rot angles + input scaling (2 x 5) + output scaling (3 read-out wires)
    assert counts["quantum"] == 30 + 10 + 3
    # classical critic 5 -> 8 -> 1; no encoder parameters (observation fits the register)
    assert counts["classical"] == 5 * 8 + 8 + 8 + 1
    assert counts["total"] == counts["quantum"] + counts["classical"]


def test_correlator_readouts_feed_the_linear_heads():
    module = make(critic="quantum", circuit={"n_qubits": 5, "n_layers": 2, "observables": "Z+ZZ"})
    assert module.actor_head.in_features == 15 and module.critic[1].in_features == 15  # 5 <Z_i> + 10 <Z_i Z_j>
    # 2 circuits x (30 Rot angles + 10 input factors + 15 output factors); heads 15 -> 3 and 15 -> 1
    assert module.parameter_counts() == {"quantum": 2 * 55, "classical": 48 + 16, "total": 174}


def test_inference_only_copy_drops_critic_and_loads_learner_state():
    learner_copy = make(critic="quantum")
    runner_copy = QuantumPPORLModule(
        observation_space=VEC5, action_space=D3, inference_only=True, model_config=learner_copy.model_config
    )
    assert not hasattr(runner_copy, "critic")
    state = learner_copy.get_state(inference_only=True)
    assert not any(k.startswith("critic") for k in state)
    runner_copy.set_state(state)
    obs = {Columns.OBS: torch.rand(4, 5) * 2 - 1}
    torch.testing.assert_close(
        runner_copy.forward_inference(obs)[Columns.ACTION_DIST_INPUTS],
        learner_copy.forward_inference(obs)[Columns.ACTION_DIST_INPUTS],
    )


@pytest.mark.parametrize(
    "obs, act, model_config, key, match",
    [
        (VEC5, D3, {"circuit": {"n_qubits": 0}}, "circuit.n_qubits", r"must be an int in 1\.\.24, got 0"),
        (VEC5, D3, {"circuit": {"n_qubits": 30}}, "circuit.n_qubits", r"must be an int in 1\.\.24, got 30 \(a statevector of 30 qubits needs .* = 8 GiB per sample"),
        (VEC5, D3, {"circuit": {"n_qubits": 5, "ansatz": "qaoa"}}, "circuit.ansatz", r"must be one of \['strongly_entangling'"),
        (VEC5, D3, {"circuit": {"n_qubits": 5, "device": "my.device"}}, "circuit.device", r"must be one of"),
        (VEC5, D3, {"circuit": {"n_qubits": "5"}}, "circuit.n_qubits", r"must be an int in 1\.\.24, got '5' \(str\)"),
        (VEC5, D3, {"circuit": {"n_qubits": 5, "depth": 3}}, "circuit", r"unknown key\(s\) \['depth'\]; allowed: \['n_qubits'"),
        (VEC5, D3, {"circuit": [5]}, "circuit", r"must be a dict of circuit keys"),
        (VEC5, D3, {"hiddens": [3]}, "", r"unknown key\(s\) \['hiddens'\]; allowed"),
        (VEC5, D3, [("circuit", {})], "", r"must be a dict, got list"),
        (VEC5, D3, {"encoder": "transformer"}, "encoder", r"must be one of \['auto', 'none', 'linear', 'cnn'\]"),
        (VEC5, D3, {"readout": "softmax"}, "readout", r"must be one of \['auto', 'expval', 'linear'\], got 'softmax'"),
        (VEC5, D3, {"critic": "none"}, "critic", r"must be one of \['classical', 'quantum'\]"),
        (VEC5, D3, {"critic_hiddens": [64, 0]}, "critic_hiddens", r"must be a list of positive ints"),
        (VEC12, D3, {"encoder": "none"}, "encoder", r"'none' needs a vector observation of at most n_qubits=4"),
        (IMG, D3, {"conv_filters": [[16, 50, 4]]}, "conv_filters", r"layer 0 \(kernel 50, stride 4\) does not fit"),
        (gym.spaces.Box(0, 1, (4, 4), np.float32), D3, {"encoder": "cnn"}, "encoder", r"'cnn' needs an image observation"),
        (gym.spaces.Dict({"a": gym.spaces.Text(4)}), D3, {}, "observation_space", r"must be one of Box .*Dict, Tuple"),
        (VEC5, gym.spaces.Box(-1, 1, (2, 2)), {}, "action_space", r"must be Discrete, \(1-D\) MultiDiscrete or a 1-D Box"),
        (VEC5, gym.spaces.Discrete(7), {"readout": "expval"}, "readout", r"'expval' reads one wire per logit"),
        (VEC5, D3, {"critic": "quantum", "critic_circuit": {"n_qubits": 3}}, "critic_circuit.n_qubits", r"must equal circuit\.n_qubits \(4\)"),
        (VEC5, D3, {"critic": "quantum", "critic_circuit": {"n_layers": 0}}, "critic_circuit.n_layers", r"must be an int >= 1"),
        (VEC5, D3, {"critic_circuit": {"n_layers": 1}}, "critic_circuit", r"is only used with critic: 'quantum' \(got critic: 'classical'\)"),
        (VEC5, D3, {"circuit": {"n_qubits": 5, "n_outputs": 2}}, "circuit.n_outputs", r"is not settable"),
    ],
)
def test_bad_model_config_names_the_key(obs, act, model_config, key, match):
    """Keys are paths inside the model_config; whoever nests it puts its prefix in front."""
    pattern = "^" + (re.escape(key) + ": " if key else "") + match
    with pytest.raises(ConfigError, match=pattern) as info:
        validate_model_config(model_config, obs, act)
    assert info.value.key == key
    with pytest.raises(ConfigError, match=pattern) as info:  # the module raises the same before building anything
        QuantumPPORLModule(observation_space=obs, action_space=act, model_config=model_config)
    assert info.value.key == key
    # Under a caller's prefix (the experiment loader's is "model_config"); the spaces are not in it.
    full = key if key.endswith("_space") else f"model_config.{key}" if key else "model_config"
    with pytest.raises(ConfigError) as info:
        validate_model_config(model_config, obs, act, prefix="model_config")
    assert info.value.key == full and str(info.value).startswith(f"{full}: ")


def test_module_names_the_circuit_key_the_fast_path_refuses():
    model_config = {"circuit": {"n_qubits": 5, "execution": "fast", "device": "default.mixed"}}
    with pytest.raises(ConfigError, match=r"^circuit\.execution: 'fast' cannot run this circuit") as info:
        QuantumPPORLModule(observation_space=VEC5, action_space=D3, model_config=model_config)
    assert info.value.key == "circuit.execution"
    with pytest.raises(ConfigError, match=r"^model_config\['paddle_0'\]\.readout: ") as info:  # a caller's prefix
        validate_model_config({"readout": "expval"}, VEC5, gym.spaces.Discrete(7), prefix="model_config['paddle_0']")
    assert info.value.key == "model_config['paddle_0'].readout"


def test_experiment_yaml_errors_carry_the_full_key_path_once():
    """Through the experiment loader: model_config.<path>, never model_config.model_config...; the qubit
    limit with the memory; picklable with key and message (Ray ships errors between processes)."""
    import pickle

    from rllib_quantum.config import load_experiment

    path = "configs/quantum_independent_pong_features.yaml"
    with pytest.raises(ConfigError) as info:
        load_experiment(path, {"model_config.circuit.n_qubits": 10000})
    err = info.value
    assert err.key == "model_config.circuit.n_qubits" and err.source == path
    assert str(err).startswith(f"{path}: model_config.circuit.n_qubits: must be an int in 1..24, got 10000 (")
    assert "2**10003 bytes" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.key, clone.source, str(clone)) == (err.key, err.source, str(err))
    with pytest.raises(ConfigError) as info:
        load_experiment(path, {"model_config.lr_multipliers.circuit": -1})
    assert info.value.key == "model_config.lr_multipliers.circuit"
    with pytest.raises(ConfigError) as info:
        load_experiment(path, {"model_config.readout": "softmax"})
    assert info.value.key == "model_config.readout"


def test_sampling_passes_build_no_graph_and_reuse_the_circuit_cache():
    """forward_inference/forward_exploration run without autograd (as RLlib's defaults do), so
    sampling neither builds a graph nor recompiles the circuit's weights each step."""
    module = QuantumPPORLModule(
        observation_space=VEC5, action_space=gym.spaces.Discrete(3),
        model_config={"circuit": {"n_qubits": 5, "n_layers": 2}},
    )
    batch = {Columns.OBS: torch.rand(4, 5)}
    for forward in (module.forward_inference, module.forward_exploration):
        out = forward(batch)[Columns.ACTION_DIST_INPUTS]
        assert not out.requires_grad and out.grad_fn is None
    key = module.actor._weights_cache.key
    module.forward_exploration(batch)
    assert module.actor._weights_cache.key == key  # cached, not recompiled
    assert module.forward_train(batch)[Columns.ACTION_DIST_INPUTS].requires_grad
