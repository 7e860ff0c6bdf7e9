"""The ``model_config`` of :class:`QuantumPPORLModule`: defaults and up-front validation.

Everything a quantum module can be told lives in :data:`DEFAULT_MODEL_CONFIG`;
:func:`validate_model_config` checks a user's dict against it (and, given the spaces, checks that
the encoder can take the observation) so that a bad key fails on the driver, before Ray starts
workers. A bad key raises :class:`~rllib_quantum.errors.ConfigError` whose ``key`` is its path
inside the ``model_config`` (``circuit.n_qubits``, ``readout``, ``lr_multipliers.circuit``); the
experiment loader puts ``model_config.`` in front (:meth:`ConfigError.under`), so a YAML user reads
``model_config.circuit.n_qubits: ...``.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Optional

import gymnasium as gym
import numpy as np

from rllib_quantum.circuits import CircuitSpec
from rllib_quantum.modules.observations import encoder_input_shape
from rllib_quantum.errors import ConfigError, reraise_under

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
    # Actor read-out (logits, or Gaussian means for Box actions): "expval" = the output-scaled <Z_i>
    # of the first n_logits wires;
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
        raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")


def _int_list(key: str, value: Any, inner: Optional[int] = None) -> None:
    def ok(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    good = isinstance(value, (list, tuple)) and all(
        (ok(v) if inner is None else isinstance(v, (list, tuple)) and len(v) == inner and all(ok(u) for u in v))
        for v in value
    )
    if not good:
        shape = "a list of positive ints" if inner is None else f"a list of [{', '.join(['int'] * inner)}] lists"
        raise ConfigError(key, f"must be {shape}, got {value!r}")


def _lr_multipliers(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError("lr_multipliers", f"must be a dict over {list(PARAMETER_GROUPS)}, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - set(PARAMETER_GROUPS))
    if unknown:
        raise ConfigError("lr_multipliers", f"unknown key(s) {unknown}; allowed: {list(PARAMETER_GROUPS)}")
    out = dict.fromkeys(PARAMETER_GROUPS, 1.0)
    for group, factor in value.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
            raise ConfigError(f"lr_multipliers.{group}", f"must be a finite number >= 0, got {factor!r}")
        out[group] = float(factor)
    return out


def validate_model_config(
    model_config: Optional[Mapping[str, Any]],
    observation_space: Optional[gym.Space] = None,
    action_space: Optional[gym.Space] = None,
    *,
    prefix: str = "",
) -> dict:
    """Returns ``model_config`` with defaults filled in, or raises naming the bad key.

    Args:
        model_config: user keys (see :data:`DEFAULT_MODEL_CONFIG`); ``None`` means all defaults.
        observation_space: if given, the encoder is checked against it.
        action_space: if given, it must be ``Discrete`` or ``MultiDiscrete``.
        prefix: key path of ``model_config`` itself, put in front of every error's key (default
            none: callers that nest it re-raise under their own prefix, e.g. ``"model_config"``).

    Raises:
        ConfigError: ``key`` is the dotted path of the bad entry inside ``model_config``, e.g.
            ``"circuit.n_qubits"``, ``"readout"``, ``"lr_multipliers.circuit"`` (``prefix`` itself
            for a non-mapping or unknown top-level keys); ``"observation_space"`` /
            ``"action_space"`` for spaces the module cannot take.

    Example:
        >>> cfg = validate_model_config({"circuit": {"n_qubits": 5}})
        >>> cfg["circuit"]["n_layers"], cfg["critic"]
        (2, 'classical')
        >>> validate_model_config({"readout": "softmax"}, prefix="model_config")
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: model_config.readout: must be one of ['auto', 'expval', 'linear'], got 'softmax'
    """
    with reraise_under(prefix):
        cfg = _validate_keys(model_config)
    if action_space is not None:
        resolve_readout(cfg, action_space, prefix=prefix)
    if observation_space is not None:
        resolve_encoder(cfg, observation_space, prefix=prefix)
    return cfg


def _validate_keys(model_config: Optional[Mapping[str, Any]]) -> dict:
    """The space-free checks of :func:`validate_model_config`; keys relative to ``model_config``."""
    if model_config is None:
        model_config = {}
    if not isinstance(model_config, Mapping):
        raise ConfigError("", f"must be a dict, got {type(model_config).__name__}")
    unknown = sorted(str(k) for k in set(model_config) - set(DEFAULT_MODEL_CONFIG) - _RLLIB_KEYS)
    if unknown:
        raise ConfigError("", f"unknown key(s) {unknown}; allowed: {sorted(DEFAULT_MODEL_CONFIG)}")
    cfg = copy.deepcopy(DEFAULT_MODEL_CONFIG)
    for key in DEFAULT_MODEL_CONFIG:
        if key in model_config:
            cfg[key] = copy.deepcopy(model_config[key])
    for key in ("circuit", "critic_circuit"):
        if not isinstance(cfg[key], Mapping):
            raise ConfigError(key, f"must be a dict of circuit keys, got {cfg[key]!r}")
        if "n_outputs" in cfg[key]:
            raise ConfigError(
                f"{key}.n_outputs",
                "is not settable: the module reads out the wires its 'readout' needs (actor) or every wire (critic)",
            )
    circuit = {**DEFAULT_MODEL_CONFIG["circuit"], **cfg["circuit"]}
    cfg["circuit"] = circuit
    actor_spec = CircuitSpec.from_config(circuit, prefix="circuit")
    _choice("encoder", cfg["encoder"], ENCODERS)
    _choice("readout", cfg["readout"], READOUTS)
    _choice("critic", cfg["critic"], CRITICS)
    _int_list("conv_filters", cfg["conv_filters"], inner=3)
    _int_list("critic_hiddens", cfg["critic_hiddens"])
    cfg["lr_multipliers"] = _lr_multipliers(cfg["lr_multipliers"])
    if cfg["critic"] == "quantum":
        critic = critic_circuit_config(cfg)
        CircuitSpec.from_config(critic, prefix="critic_circuit")
        if critic["n_qubits"] != actor_spec.n_qubits:
            raise ConfigError(
                "critic_circuit.n_qubits",
                f"must equal circuit.n_qubits ({actor_spec.n_qubits}): both circuits read the same encoder output, "
                f"got {critic['n_qubits']}",
            )
    elif cfg["critic_circuit"]:
        raise ConfigError("critic_circuit", "is only used with critic: 'quantum' (got critic: 'classical')")
    return cfg


def critic_circuit_config(cfg: Mapping[str, Any]) -> dict:
    """The quantum critic's circuit keys: the actor's, overridden by ``critic_circuit``, all wires read."""
    return {**cfg["circuit"], **cfg["critic_circuit"], "n_outputs": None}


def n_logits(action_space: gym.Space) -> int:
    """How many numbers the actor's read-out makes: logits for ``Discrete`` (n) and ``MultiDiscrete``
    (sum of nvec), Gaussian means for a 1-D ``Box`` (its size; the log-stds are a separate,
    state-independent parameter)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete) and np.asarray(action_space.nvec).ndim == 1:
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return int(action_space.shape[0])
    raise ConfigError(
        "action_space",
        f"must be Discrete, (1-D) MultiDiscrete or a 1-D Box (QuantumPPORLModule takes no other), got {action_space}",
    )


def resolve_readout(cfg: Mapping[str, Any], action_space: gym.Space, *, prefix: str = "") -> str:
    """Which actor read-out ``cfg["readout"]`` means for this action space ("expval" or "linear").

    Raises ``ConfigError`` (key ``readout`` under ``prefix``, or ``action_space``) when they do not fit.
    """
    logits, n_qubits = n_logits(action_space), cfg["circuit"]["n_qubits"]
    readout = cfg["readout"]
    if readout == "auto":
        return "expval" if logits <= n_qubits else "linear"
    if readout == "expval" and logits > n_qubits:
        raise ConfigError(
            "readout",
            f"'expval' reads one wire per logit, but the action space needs {logits} logits and "
            f"circuit.n_qubits is {n_qubits}; use 'linear' or more qubits",
        ).under(prefix)
    return readout


# Layers the auto encoder uses for frames too small for ``conv_filters`` (a 7x7 grid view, say):
# 3x3 kernels at stride 1, each kernel clipped to what is left of the frame.
SMALL_IMAGE_FILTERS = [[16, 3, 1], [32, 3, 1]]


def _conv_fits(shape, filters) -> Optional[int]:
    """The index of the first layer of ``filters`` that does not fit ``shape`` (H, W, C), or None."""
    h, w = shape[0], shape[1]
    for i, (_, kernel, stride) in enumerate(filters):
        h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
        if h < 1 or w < 1:
            return i
    return None


def fit_small_image_filters(shape) -> list:
    """:data:`SMALL_IMAGE_FILTERS` with every kernel clipped to what is left of an ``(H, W, C)`` frame."""
    h, w = shape[0], shape[1]
    out = []
    for channels, kernel, stride in SMALL_IMAGE_FILTERS:
        kernel = max(1, min(kernel, h, w))
        out.append([channels, kernel, stride])
        h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    return out


def resolve_conv_filters(cfg: Mapping[str, Any], observation_space: gym.Space, *, prefix: str = "") -> list:
    """The CNN layers for an image observation: ``cfg["conv_filters"]`` when they fit the frame;
    with ``encoder: auto`` and the default filters, small frames get :func:`fit_small_image_filters`
    (as RLlib's catalog picks filters by frame size); else :class:`ConfigError` on ``conv_filters``."""
    shape = encoder_input_shape(observation_space)
    filters = [list(f) for f in cfg["conv_filters"]]
    bad = _conv_fits(shape, filters)
    if bad is None:
        return filters
    if cfg["encoder"] == "auto" and filters == DEFAULT_MODEL_CONFIG["conv_filters"]:
        return fit_small_image_filters(shape)
    kernel, stride = filters[bad][1], filters[bad][2]
    raise ConfigError(
        "conv_filters",
        f"layer {bad} (kernel {kernel}, stride {stride}) does not fit an observation of shape {shape}; "
        "use smaller kernels/strides or larger frames (or leave conv_filters unset: small frames then get "
        f"{SMALL_IMAGE_FILTERS} clipped to fit)",
    ).under(prefix)


def resolve_encoder(cfg: Mapping[str, Any], observation_space: gym.Space, *, prefix: str = "") -> str:
    """Which encoder ``cfg["encoder"]`` means for this observation space ("none", "linear", "cnn").

    Any space of :data:`~rllib_quantum.modules.observations.SUPPORTED` works: images ``(H, W, C)``
    go to the CNN, everything else is flattened to a vector first (one-hots for discrete parts,
    see :mod:`rllib_quantum.modules.observations`). Raises ``ConfigError`` (key ``encoder`` or
    ``conv_filters`` under ``prefix``, or ``observation_space``) when the chosen encoder cannot
    take the observation.
    """
    n_qubits = cfg["circuit"]["n_qubits"]
    shape = encoder_input_shape(observation_space)  # raises for unsupported spaces
    choice = cfg["encoder"]
    if choice == "auto":
        if len(shape) == 3:
            choice = "cnn"
        else:
            choice = "none" if shape[0] <= n_qubits else "linear"
    if choice == "none" and (len(shape) != 1 or shape[0] > n_qubits):
        raise ConfigError(
            "encoder",
            f"'none' needs a vector observation of at most n_qubits={n_qubits} numbers, got shape {shape}; "
            "use 'linear' (vectors) or 'cnn' (images)",
        ).under(prefix)
    if choice == "linear" and len(shape) != 1:
        raise ConfigError("encoder", f"'linear' needs a vector observation, got shape {shape}").under(prefix)
    if choice == "cnn":
        if len(shape) != 3:
            raise ConfigError("encoder", f"'cnn' needs an image observation (H, W, C), got shape {shape}").under(prefix)
        resolve_conv_filters(cfg, observation_space, prefix=prefix)
    return choice
