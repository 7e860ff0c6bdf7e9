"""The ``model_config`` of :class:`QuantumPPORLModule`: defaults and up-front validation.

Everything a quantum module can be told lives in :data:`DEFAULT_MODEL_CONFIG`;
:func:`validate_model_config` checks a user's dict against it (and, given the spaces, checks that
the encoder can take the observation) so that a bad key fails on the driver, before Ray starts
workers.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Optional

import gymnasium as gym
import numpy as np

from rllib_quantum.circuits import CircuitSpec

ENCODERS = ("auto", "none", "linear", "cnn")
READOUTS = ("auto", "expval", "linear")
CRITICS = ("classical", "quantum")
# Trainable parameter groups of a quantum module (see QuantumPPORLModule.parameter_groups).
PARAMETER_GROUPS = ("circuit", "input_scale", "output_scale", "classical")

DEFAULT_MODEL_CONFIG: dict = {
    # CircuitSpec keys of the actor circuit (see rllib_quantum.circuits.CircuitSpec).
    "circuit": {"n_qubits": 4, "n_layers": 2},
    # Classical pre-encoder: "auto" = CNN for images (H, W, C), a linear map for vectors wider
    # than the register, none when the vector fits (zero-padded up to n_qubits).
    "encoder": "auto",
    # CNN layers [out_channels, kernel, stride] ("valid" padding), then a linear map to n_qubits.
    "conv_filters": [[16, 8, 4], [32, 4, 2]],
    # Actor read-out: "expval" = logits are the output-scaled <Z_i> of the first n_logits wires;
    # "linear" = a linear layer on all n_qubits <Z_i>; "auto" = expval when it fits, else linear.
    "readout": "auto",
    # Critic: "classical" = MLP on the encoder's output; "quantum" = its own circuit + linear head.
    "critic": "classical",
    # Overrides of the actor's circuit keys for the quantum critic (n_qubits must stay the same).
    "critic_circuit": {},
    # Hidden sizes of the classical critic MLP.
    "critic_hiddens": [64, 64],
    # Learning rate of each parameter group = PPO's lr (or lr schedule) x this factor; 0 freezes
    # the group. Read by QuantumPPOTorchLearner (RLlib's default learner uses one lr for all).
    "lr_multipliers": dict.fromkeys(PARAMETER_GROUPS, 1.0),
}

# Keys RLlib itself may add to a model_config (from DefaultModelConfig); tolerated, not used.
_RLLIB_KEYS = {
    "fcnet_hiddens", "fcnet_activation", "fcnet_kernel_initializer", "fcnet_kernel_initializer_kwargs",
    "fcnet_bias_initializer", "fcnet_bias_initializer_kwargs", "conv_activation", "conv_kernel_initializer",
    "conv_kernel_initializer_kwargs", "conv_bias_initializer", "conv_bias_initializer_kwargs",
    "head_fcnet_hiddens", "head_fcnet_activation", "head_fcnet_kernel_initializer",
    "head_fcnet_kernel_initializer_kwargs", "head_fcnet_bias_initializer", "head_fcnet_bias_initializer_kwargs",
    "free_log_std", "log_std_clip_param", "vf_share_layers", "use_lstm", "max_seq_len", "lstm_cell_size",
    "lstm_use_prev_action", "lstm_use_prev_reward", "lstm_kernel_initializer", "lstm_kernel_initializer_kwargs",
    "lstm_bias_initializer", "lstm_bias_initializer_kwargs", "use_attention",
}


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"model_config key {key!r} must be one of {list(allowed)}, got {value!r}")


def _int_list(key: str, value: Any, inner: Optional[int] = None) -> None:
    def ok(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    good = isinstance(value, (list, tuple)) and all(
        (ok(v) if inner is None else isinstance(v, (list, tuple)) and len(v) == inner and all(ok(u) for u in v))
        for v in value
    )
    if not good:
        shape = "a list of positive ints" if inner is None else f"a list of [{', '.join(['int'] * inner)}] lists"
        raise TypeError(f"model_config key {key!r} must be {shape}, got {value!r}")


def _lr_multipliers(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise TypeError(f"model_config key 'lr_multipliers' must be a dict over {list(PARAMETER_GROUPS)}, got {value!r}")
    unknown = sorted(set(value) - set(PARAMETER_GROUPS))
    if unknown:
        raise ValueError(f"unknown model_config key(s) {[f'lr_multipliers.{k}' for k in unknown]}; allowed: {list(PARAMETER_GROUPS)}")
    out = dict.fromkeys(PARAMETER_GROUPS, 1.0)
    for group, factor in value.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
            raise ValueError(f"model_config key 'lr_multipliers.{group}' must be a finite number >= 0, got {factor!r}")
        out[group] = float(factor)
    return out


def validate_model_config(
    model_config: Optional[Mapping[str, Any]],
    observation_space: Optional[gym.Space] = None,
    action_space: Optional[gym.Space] = None,
) -> dict:
    """Returns ``model_config`` with defaults filled in, or raises naming the bad key.

    Args:
        model_config: user keys (see :data:`DEFAULT_MODEL_CONFIG`); ``None`` means all defaults.
        observation_space: if given, the encoder is checked against it.
        action_space: if given, it must be ``Discrete`` or ``MultiDiscrete``.

    Example:
        >>> cfg = validate_model_config({"circuit": {"n_qubits": 5}})
        >>> cfg["circuit"]["n_layers"], cfg["critic"]
        (2, 'classical')
    """
    if model_config is None:
        model_config = {}
    if not isinstance(model_config, Mapping):
        raise TypeError(f"model_config must be a dict, got {type(model_config).__name__}")
    unknown = sorted(set(model_config) - set(DEFAULT_MODEL_CONFIG) - _RLLIB_KEYS)
    if unknown:
        raise ValueError(f"unknown model_config key(s) {unknown}; allowed: {sorted(DEFAULT_MODEL_CONFIG)}")
    cfg = copy.deepcopy(DEFAULT_MODEL_CONFIG)
    for key in DEFAULT_MODEL_CONFIG:
        if key in model_config:
            cfg[key] = copy.deepcopy(model_config[key])
    for key in ("circuit", "critic_circuit"):
        if not isinstance(cfg[key], Mapping):
            raise TypeError(f"model_config key {key!r} must be a dict of circuit keys, got {cfg[key]!r}")
        if "n_outputs" in cfg[key]:
            raise ValueError(
                f"model_config key '{key}.n_outputs' is not settable: the module reads out the wires its "
                "'readout' needs (actor) or every wire (critic)"
            )
    circuit = {**DEFAULT_MODEL_CONFIG["circuit"], **cfg["circuit"]}
    cfg["circuit"] = circuit
    actor_spec = CircuitSpec.from_config(circuit, prefix="circuit.")
    _choice("encoder", cfg["encoder"], ENCODERS)
    _choice("readout", cfg["readout"], READOUTS)
    _choice("critic", cfg["critic"], CRITICS)
    _int_list("conv_filters", cfg["conv_filters"], inner=3)
    _int_list("critic_hiddens", cfg["critic_hiddens"])
    cfg["lr_multipliers"] = _lr_multipliers(cfg["lr_multipliers"])
    if cfg["critic"] == "quantum":
        critic = critic_circuit_config(cfg)
        CircuitSpec.from_config(critic, prefix="critic_circuit.")
        if critic["n_qubits"] != actor_spec.n_qubits:
            raise ValueError(
                f"model_config key 'critic_circuit.n_qubits' must equal circuit.n_qubits "
                f"({actor_spec.n_qubits}): both circuits read the same encoder output, got {critic['n_qubits']}"
            )
    elif cfg["critic_circuit"]:
        raise ValueError("model_config key 'critic_circuit' is only used with critic: 'quantum' (got critic: 'classical')")
    if action_space is not None:
        resolve_readout(cfg, action_space)
    if observation_space is not None:
        resolve_encoder(cfg, observation_space)
    return cfg


def critic_circuit_config(cfg: Mapping[str, Any]) -> dict:
    """The quantum critic's circuit keys: the actor's, overridden by ``critic_circuit``, all wires read."""
    return {**cfg["circuit"], **cfg["critic_circuit"], "n_outputs": None}


def n_logits(action_space: gym.Space) -> int:
    """Number of policy logits for a ``Discrete`` or ``MultiDiscrete`` action space."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete) and np.asarray(action_space.nvec).ndim == 1:
        return int(np.sum(action_space.nvec))
    raise ValueError(
        f"QuantumPPORLModule takes Discrete or (1-D) MultiDiscrete action spaces, got {action_space}"
    )


def resolve_readout(cfg: Mapping[str, Any], action_space: gym.Space) -> str:
    """Which actor read-out ``cfg["readout"]`` means for this action space ("expval" or "linear")."""
    logits, n_qubits = n_logits(action_space), cfg["circuit"]["n_qubits"]
    readout = cfg["readout"]
    if readout == "auto":
        return "expval" if logits <= n_qubits else "linear"
    if readout == "expval" and logits > n_qubits:
        raise ValueError(
            f"model_config key 'readout': 'expval' reads one wire per logit, but the action space needs "
            f"{logits} logits and circuit.n_qubits is {n_qubits}; use 'linear' or more qubits"
        )
    return readout


def resolve_encoder(cfg: Mapping[str, Any], observation_space: gym.Space) -> str:
    """Which encoder ``cfg["encoder"]`` means for this observation space ("none", "linear", "cnn").

    Raises ``ValueError`` when the chosen encoder cannot take the observation.
    """
    n_qubits = cfg["circuit"]["n_qubits"]
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(
            f"QuantumPPORLModule takes Box observations (a vector, or an image H x W x C), got {observation_space}; "
            "flatten or wrap the env's observations first"
        )
    shape = observation_space.shape
    choice = cfg["encoder"]
    if choice == "auto":
        if len(shape) == 3:
            choice = "cnn"
        elif len(shape) == 1:
            choice = "none" if shape[0] <= n_qubits else "linear"
        else:
            raise ValueError(
                f"model_config key 'encoder': 'auto' handles vector (D,) or image (H, W, C) observations, "
                f"got shape {shape}"
            )
    if choice == "none" and (len(shape) != 1 or shape[0] > n_qubits):
        raise ValueError(
            f"model_config key 'encoder': 'none' needs a vector observation of at most n_qubits={n_qubits} "
            f"numbers, got shape {shape}; use 'linear' (vectors) or 'cnn' (images)"
        )
    if choice == "linear" and len(shape) != 1:
        raise ValueError(f"model_config key 'encoder': 'linear' needs a vector observation, got shape {shape}")
    if choice == "cnn":
        if len(shape) != 3:
            raise ValueError(f"model_config key 'encoder': 'cnn' needs an image observation (H, W, C), got shape {shape}")
        h, w = shape[0], shape[1]
        for i, (_, kernel, stride) in enumerate(cfg["conv_filters"]):
            h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
            if h < 1 or w < 1:
                raise ValueError(
                    f"model_config key 'conv_filters': layer {i} (kernel {kernel}, stride {stride}) does not fit an "
                    f"observation of shape {shape}; use smaller kernels/strides or larger frames"
                )
    return choice
