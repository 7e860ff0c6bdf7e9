"""The ``model_config`` of :class:`QuantumPPORLModule`: defaults, up-front validation, one resolved object.

Everything a quantum module can be told lives in :data:`DEFAULT_MODEL_CONFIG`.
:meth:`QuantumModelConfig.from_dict` is the one parser: it checks a user's dict against those keys
and, given the spaces, resolves what the module will build (actor circuit with its read-out wires,
encoder and CNN layers, read-out, action head, critic) into a frozen :class:`QuantumModelConfig`.
The spec builders (``rllib_quantum.strategies.module_spec``, ``with_quantum_policies``) and
``QuantumPPORLModule.setup()`` all go through it; :meth:`QuantumModelConfig.to_dict` is the plain
dict RLlib stores in ``RLModuleSpec.model_config`` (and in checkpoints).
:func:`validate_model_config` is the dict-returning form of the same checks.

A bad key fails on the driver, before Ray starts workers, with a
:class:`~rllib_quantum.errors.ConfigError` whose ``key`` is its path inside the ``model_config``
(``circuit.n_qubits``, ``readout``, ``lr_multipliers.circuit``); the experiment loader puts
``model_config.`` in front (:meth:`ConfigError.under`), so a YAML user reads
``model_config.circuit.n_qubits: ...``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from typing import Any, Iterator, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np

from rllib_quantum.circuits import CircuitSpec
from rllib_quantum.circuits.spec import is_int
from rllib_quantum.circuits.statevector import fast_path_unsupported_reason
from rllib_quantum.modules.observations import encoder_input_shape, split_action_mask
from rllib_quantum.errors import ConfigError, reraise_under

ENCODERS = ("auto", "none", "linear", "cnn")
READOUTS = ("auto", "expval", "linear")
CRITICS = ("classical", "quantum")
# Trainable parameter groups of a quantum module (see QuantumPPORLModule.parameter_groups).
PARAMETER_GROUPS = ("circuit", "input_scale", "output_scale", "classical", "critic")

DEFAULT_MODEL_CONFIG: dict = {
    # CircuitSpec keys of the actor circuit (see rllib_quantum.circuits.CircuitSpec).
    "circuit": {"n_qubits": 4, "n_layers": 2},
    # Classical pre-encoder: "auto" = CNN for images (H, W, C), a linear map for vectors wider
    # than the register, none when the vector fits (zero-padded up to n_qubits).
    "encoder": "auto",
    # CNN layers [out_channels, kernel, stride] ("valid" padding), then a linear map to n_qubits.
    "conv_filters": [[16, 8, 4], [32, 4, 2]],
    # Actor read-out (logits, or Gaussian means for Box actions): "expval" = the output-scaled <Z_i>
    # of the first n_logits wires; "linear" = a linear layer on all the circuit's read-outs (every
    # <Z_i>, and every <Z_i Z_j> with circuit.observables "Z+ZZ"); "auto" = expval when it fits
    # (n_logits <= n_qubits, observables "Z"), else linear.
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
    # Natural-gradient steps for the actor's circuit, scalings and linear read-out head instead of
    # Adam (None: Adam for everything): a dict of NaturalGradientConfig's keys, e.g. {"kl": 1e-4}.
    # Read by QuantumPPOTorchLearner; see rllib_quantum.learners.natural_gradient.
    "natural_gradient": None,
    # Inverse temperature of the categorical action distribution(s): the logits are multiplied by it
    # (> 1 samples sharper, < 1 softer; the greedy action is unchanged). A number, or a schedule over
    # env steps like PPO's lr: [[0, 1.0], [500000, 2.0]] (piecewise linear, the last value after
    # the last point). Read by QuantumPPOTorchLearner, which sets it after every update; see
    # rllib_quantum.modules.model_config.inverse_temperature_at.
    "inverse_temperature": 1.0,
    # A reflection of the task the policy is made equivariant under (None: none): a dict with
    # "observation_signs" (+1 / -1 per entry of the flattened observation) and "action_permutation"
    # (the Discrete action each action becomes under the reflection). The logits are the mean of
    # the logits at the state and, permuted back, at its mirror image; the critic's value the mean
    # of its two values. See MirrorConfig.
    "mirror": None,
}

# ``model_config`` keys the spec builders (``rllib_quantum.strategies.module_spec``,
# ``with_quantum_policies``) add next to the user's keys; fields of QuantumModelConfig too.
MODULE_ID_KEY = "module_id"  # the module's id in its MultiRLModule: error messages name it
SEED_KEY = "seed"  # the experiment seed: parameter init draws from a generator seeded by (seed, module id)
INTERNAL_KEYS = (MODULE_ID_KEY, SEED_KEY)


@functools.lru_cache(maxsize=None)
def rllib_model_config_keys() -> frozenset:
    """Keys RLlib itself may put into a module's ``model_config``: the fields of its
    ``DefaultModelConfig`` plus what ``PPOConfig`` auto-includes (``vf_share_layers``). A quantum
    module's ``setup()`` tolerates them in RLlib's merged dict and does not use them (``conv_filters``
    is also ours, and is used); where a user writes a quantum module's options they are refused
    (:func:`check_no_rllib_keys`).

    Example:
        >>> {"fcnet_hiddens", "vf_share_layers"} <= rllib_model_config_keys()
        True
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    fields = {f.name for f in dataclasses.fields(DefaultModelConfig)}
    return frozenset(fields | set(PPOConfig()._model_config_auto_includes))


# What to use instead of RLlib's own model_config keys that a quantum module does not read.
_RLLIB_KEY_HINTS = {
    "fcnet_hiddens": "the classical critic's layers are critic_hiddens",
    "head_fcnet_hiddens": "the classical critic's layers are critic_hiddens; the actor's read-out is readout",
    "vf_share_layers": "critic: 'classical' already reads the encoder's output; critic: 'quantum' is its own circuit",
    "use_lstm": "quantum modules are feed-forward: RLlib's LSTM wrapper does not apply to them",
}


def check_no_rllib_keys(model_config: Any) -> None:
    """Raises when a user's quantum ``model_config`` names one of RLlib's ``DefaultModelConfig``
    keys (``fcnet_hiddens``, ``use_lstm``, ...): quantum modules do not read them, so a value
    there would be silently ignored. (RLlib merges its algorithm-level ``model_config`` into every
    module's; that merged dict, which the module's ``setup()`` reads, tolerates them.)

    Example:
        >>> check_no_rllib_keys({"critic_hiddens": [32]})
        >>> check_no_rllib_keys({"fcnet_hiddens": [32]})
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: fcnet_hiddens: is a key of RLlib's own modules' model_config, which quantum modules do not read (the classical critic's layers are critic_hiddens); allowed: ['circuit', 'conv_filters', 'critic', 'critic_circuit', 'critic_hiddens', 'encoder', 'inverse_temperature', 'lr_multipliers', 'mirror', 'natural_gradient', 'readout']
    """
    if not isinstance(model_config, Mapping):
        return
    for key in sorted(str(k) for k in set(model_config) & (rllib_model_config_keys() - set(DEFAULT_MODEL_CONFIG))):
        hint = _RLLIB_KEY_HINTS.get(key) or ("quantum modules are feed-forward" if key.startswith("lstm") or key == "max_seq_len" else "")
        raise ConfigError(
            key,
            f"is a key of RLlib's own modules' model_config, which quantum modules do not read"
            f"{f' ({hint})' if hint else ''}; allowed: {sorted(DEFAULT_MODEL_CONFIG)}",
        )


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")


def _int_list(key: str, value: Any, inner: Optional[int] = None) -> None:
    def ok(v):  # Python or numpy ints (normalised to int by QuantumModelConfig)
        return is_int(v) and v >= 1

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


# Natural-gradient steps build per-row copies of the dense layer matrices (4**n entries each).
NATURAL_GRADIENT_MAX_QUBITS = 6


@dataclasses.dataclass(frozen=True)
class NaturalGradientConfig:
    """Natural-gradient steps for a quantum actor (``model_config["natural_gradient"]``).

    Args:
        kl: the KL divergence each minibatch step aims at (its quadratic estimate), at PPO's
            initial lr; it follows the lr schedule's shape, ``kl * (lr_t / lr_0)**2``.
        damping: ``lambda / mean(diag F)``, the Fisher matrix's Tikhonov damping.
        fisher_rows: states of each update's first minibatch the Fisher matrix is estimated from.

    Example:
        >>> NaturalGradientConfig.from_dict({"kl": 1e-4})
        NaturalGradientConfig(kl=0.0001, damping=0.001, fisher_rows=500)
        >>> NaturalGradientConfig.from_dict({"kl": 0})
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: natural_gradient.kl: must be a finite number > 0, got 0
    """

    kl: float = 1e-4
    damping: float = 1e-3
    fisher_rows: int = 500

    @classmethod
    def from_dict(cls, value: Any) -> "NaturalGradientConfig":
        """Checks a user's dict (missing keys take the defaults); ``ConfigError`` under ``natural_gradient``."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(value, Mapping):
            raise ConfigError("natural_gradient", f"must be a dict over {allowed} or None, got {value!r}")
        unknown = sorted(str(k) for k in set(value) - set(allowed))
        if unknown:
            raise ConfigError("natural_gradient", f"unknown key(s) {unknown}; allowed: {allowed}")
        out = {f.name: value.get(f.name, f.default) for f in dataclasses.fields(cls)}
        for key in ("kl", "damping"):
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"natural_gradient.{key}", f"must be a finite number > 0, got {v!r}")
        if not is_int(out["fisher_rows"]) or out["fisher_rows"] < 1:
            raise ConfigError("natural_gradient.fisher_rows", f"must be an int >= 1, got {out['fisher_rows']!r}")
        return cls(float(out["kl"]), float(out["damping"]), int(out["fisher_rows"]))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _natural_gradient(value: Any, actor: CircuitSpec) -> Optional[NaturalGradientConfig]:
    if value is None:
        return None
    out = NaturalGradientConfig.from_dict(value)
    reason = "execution is 'pennylane'" if actor.execution == "pennylane" else fast_path_unsupported_reason(actor)
    if reason is not None:
        raise ConfigError("natural_gradient", f"needs the actor circuit on the fast path, but {reason}")
    if actor.n_qubits > NATURAL_GRADIENT_MAX_QUBITS:
        raise ConfigError(
            "natural_gradient",
            f"takes circuits of at most {NATURAL_GRADIENT_MAX_QUBITS} qubits (it copies the dense layer matrices per "
            f"state), got circuit.n_qubits {actor.n_qubits}; use None (Adam) for larger circuits",
        )
    return out


_NO_MIRROR = " (mirror: null drops the reflection, e.g. for another strategy's or env's spaces)"


@dataclasses.dataclass(frozen=True)
class MirrorConfig:
    """A reflection of the task a quantum policy is made equivariant under (``model_config["mirror"]``).

    The reflection flips the sign of some entries of the flattened observation (``m(s) = s *
    observation_signs``) and swaps actions (``action_permutation[a]`` is what action ``a`` becomes).
    With it the module's logits are ``0.5 * (l(s) + l(m(s))[action_permutation])`` and its value
    ``0.5 * (V(s) + V(m(s)))``, so ``pi(a | m(s)) = pi(action_permutation[a] | s)`` and ``V(m(s)) =
    V(s)`` hold exactly, whatever the weights: every sampled state trains the circuit at the state
    and at its mirror image (the circuit runs on twice the rows). Use it only where the game
    really is symmetric under the reflection; with cooperative pong's features ``[ball x, ball y,
    ball vx, ball vy, paddle y]`` (y in [-1, 1] from the top) and actions (stay, up, down), the
    top-bottom reflection is ``observation_signs [1, -1, 1, -1, -1]``, ``action_permutation [0, 2, 1]``.

    Args:
        observation_signs: ``+1.0`` or ``-1.0`` per entry of the flattened observation (the
            encoder's input; zero-centred features, so that negating one reflects it).
        action_permutation: a permutation of ``range(n)`` for ``Discrete(n)`` actions that is its
            own inverse (a reflection applied twice is the identity).

    Example:
        >>> MirrorConfig.from_dict({"observation_signs": [1, -1, 1, -1, -1], "action_permutation": [0, 2, 1]})
        MirrorConfig(observation_signs=(1.0, -1.0, 1.0, -1.0, -1.0), action_permutation=(0, 2, 1))
        >>> MirrorConfig.from_dict({"observation_signs": [1, -1], "action_permutation": [1, 2, 0]})
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: mirror.action_permutation: must be a permutation of range(n) that is its own inverse (a reflection), e.g. [0, 2, 1]; got [1, 2, 0]
    """

    observation_signs: Tuple[float, ...]
    action_permutation: Tuple[int, ...]

    def __post_init__(self) -> None:  # lists in (e.g. from to_dict), tuples kept
        object.__setattr__(self, "observation_signs", tuple(float(v) for v in self.observation_signs))
        object.__setattr__(self, "action_permutation", tuple(int(a) for a in self.action_permutation))

    @classmethod
    def from_dict(cls, value: Any) -> "MirrorConfig":
        """Checks a user's dict (both keys required); ``ConfigError`` under ``mirror``."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(value, Mapping) or set(value) != set(allowed):
            raise ConfigError("mirror", f"must be None or a dict with exactly the keys {allowed}, got {value!r}")
        signs, perm = value["observation_signs"], value["action_permutation"]
        if (
            not isinstance(signs, (list, tuple)) or not signs
            or not all(not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and v in (1, -1) for v in signs)
        ):
            raise ConfigError("mirror.observation_signs", f"must be a non-empty list of 1 and -1 (one per observation entry), got {signs!r}")
        if (
            not isinstance(perm, (list, tuple)) or not all(is_int(a) for a in perm)
            or sorted(int(a) for a in perm) != list(range(len(perm))) or any(int(perm[int(a)]) != i for i, a in enumerate(perm))
        ):
            raise ConfigError(
                "mirror.action_permutation",
                f"must be a permutation of range(n) that is its own inverse (a reflection), e.g. [0, 2, 1]; got {perm!r}",
            )
        return cls(signs, perm)

    def check_spaces(self, input_shape: Tuple[int, ...], head: Any) -> None:
        """Raises ``ConfigError`` under ``mirror`` unless the flattened observation (its shape
        ``input_shape``) is a vector of ``len(observation_signs)`` entries and the actions (an
        :class:`ActionHead` or an action space) are ``Discrete(len(action_permutation))``."""
        if isinstance(head, gym.Space):
            head = ActionHead.for_space(head)
        if input_shape is None or len(input_shape) != 1:
            raise ConfigError("mirror", f"needs a vector observation (flattened to 1-D), got shape {input_shape}{_NO_MIRROR}")
        if input_shape[0] != len(self.observation_signs):
            raise ConfigError(
                "mirror.observation_signs",
                f"needs one sign per observation entry ({input_shape[0]}), got {len(self.observation_signs)}{_NO_MIRROR}",
            )
        if head.kind != "categorical" or head.sizes != (len(self.action_permutation),):
            raise ConfigError(
                "mirror.action_permutation",
                f"needs Discrete({len(self.action_permutation)}) actions, got a {head.kind} head of sizes {list(head.sizes)}{_NO_MIRROR}",
            )

    def to_dict(self) -> dict:
        return {"observation_signs": list(self.observation_signs), "action_permutation": list(self.action_permutation)}

    def with_images(self, x: "torch.Tensor") -> "torch.Tensor":
        """``(B, D)`` flattened observations -> ``(2B, D)``: the states, then their mirror images."""
        import torch

        return torch.cat([x, x * torch.as_tensor(self.observation_signs, dtype=x.dtype, device=x.device)])

    def mean_over_images(self, out: "torch.Tensor", actions: bool = True) -> "torch.Tensor":
        """``(2B, ...)`` outputs at the states and their mirror images (as :meth:`with_images` orders
        them) -> the ``(B, ...)`` means, the images' second dimension permuted back where it indexes
        actions (``actions``: logits ``(2B, K)`` or their Jacobian ``(2B, K, D)``; else values)."""
        rows = out.shape[0] // 2
        images = out[rows:, list(self.action_permutation)] if actions else out[rows:]
        return 0.5 * (out[:rows] + images)


def _inverse_temperature(value: Any):
    """A number > 0, or ``[[env_steps, value], ...]`` (steps ints from 0, increasing; values > 0):
    the float, or a tuple of ``(int, float)`` pairs."""
    def positive(v):
        return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v > 0

    if positive(value):
        return float(value)
    allowed = "a finite number > 0, or a schedule [[env_steps, value], ...] starting at env step 0, steps increasing, values > 0"
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        raise ConfigError("inverse_temperature", f"must be {allowed}, got {value!r}")
    steps, values = [p[0] for p in value], [p[1] for p in value]
    if not all(is_int(t) and t >= 0 for t in steps) or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ConfigError("inverse_temperature", f"must be {allowed}; its env steps {steps!r} are not")
    if not all(positive(v) for v in values):
        raise ConfigError("inverse_temperature", f"must be {allowed}; its values {values!r} are not")
    return tuple((int(t), float(v)) for t, v in value)


INVERSE_TEMPERATURE_KEY = "inverse_temperature"
MIRROR_KEY = "mirror"


def checked_inverse_temperature(value: Any, action_space: Optional[gym.Space] = None):
    """``value`` validated (see :data:`DEFAULT_MODEL_CONFIG`): the float, or a tuple of ``(env
    steps, value)`` pairs. ``ConfigError`` keyed ``inverse_temperature`` if it is malformed, or
    other than 1 for a ``Box`` ``action_space`` (a Gaussian's spread is its learned log-std)."""
    out = _inverse_temperature(value)
    if isinstance(action_space, gym.spaces.Box) and out != 1.0:
        raise ConfigError(
            INVERSE_TEMPERATURE_KEY,
            f"scales the logits of Discrete and MultiDiscrete actions; the action space {action_space} has a "
            "Gaussian head whose spread is its learned log-std: leave it at 1.0",
        )
    return out


def inverse_temperature_at(value, env_steps: float) -> float:
    """The inverse temperature (``model_config["inverse_temperature"]``, as validated) after
    ``env_steps`` sampled env steps: the number itself, or the schedule linearly interpolated
    (its last value after its last point), as RLlib's lr and entropy schedules.

    Example:
        >>> inverse_temperature_at(2.0, 10**6), inverse_temperature_at(((0, 1.0), (400, 3.0)), 100)
        (2.0, 1.5)
        >>> inverse_temperature_at(((0, 1.0), (400, 3.0)), 10**6)
        3.0
    """
    if isinstance(value, float):
        return value
    steps, values = zip(*value)
    return float(np.interp(env_steps, steps, values))


def validate_model_config(
    model_config: Optional[Mapping[str, Any]],
    observation_space: Optional[gym.Space] = None,
    action_space: Optional[gym.Space] = None,
    *,
    prefix: str = "",
) -> dict:
    """Returns ``model_config`` with defaults filled in, or raises naming the bad key.

    The checks of :meth:`QuantumModelConfig.from_dict`, for callers that want the user's keys
    back as a dict (``"auto"`` choices stay ``"auto"``) or do not know both spaces yet; as the
    check of a user's own keys it also refuses RLlib's (:func:`check_no_rllib_keys`).

    Args:
        model_config: user keys (see :data:`DEFAULT_MODEL_CONFIG`); ``None`` means all defaults.
        observation_space: if given, the encoder is checked against it.
        action_space: if given, it must be ``Discrete``, ``MultiDiscrete`` or a 1-D ``Box``, and
            the read-out must fit it.
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
        check_no_rllib_keys(model_config)
        cfg, _, _ = _check_keys(model_config)
    if action_space is not None:
        _resolve_readout(cfg, ActionHead.for_space(action_space), prefix=prefix)
    if observation_space is not None:
        _resolve_encoder(cfg, split_action_mask(observation_space, action_space)[0], prefix=prefix)
    return cfg


def spec_model_config(
    model_config: Optional[Mapping[str, Any]],
    observation_space: Optional[gym.Space] = None,
    action_space: Optional[gym.Space] = None,
    *,
    module_id: Optional[str] = None,
    seed: Optional[int] = None,
    prefix: str = "",
) -> dict:
    """The ``model_config`` dict of a quantum module's ``RLModuleSpec``, checked now.

    With both spaces known: :meth:`QuantumModelConfig.to_dict` of the resolved config (what the
    module will build, spelled out). With a space left ``None`` (RLlib infers it from the env
    when the algorithm is built): the checked keys, defaults filled in; the module resolves them
    in ``setup()``. ``module_id`` and ``seed`` are added as the keys ``"module_id"`` and
    ``"seed"`` (see :class:`QuantumModelConfig`).

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> d = spec_model_config({}, gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2), module_id="p0")
        >>> d["encoder"], d["readout"], d["module_id"]
        ('none', 'expval', 'p0')
        >>> spec_model_config({}, module_id="p0")["encoder"]   # spaces unknown yet
        'auto'
    """
    if observation_space is not None and action_space is not None:
        with reraise_under(prefix):
            check_no_rllib_keys(model_config)  # validate_model_config (below) makes the same check
        return QuantumModelConfig.from_dict(
            model_config, observation_space, action_space, module_id=module_id, seed=seed, prefix=prefix
        ).to_dict()
    return validate_model_config(
        _with_internal_keys(model_config, module_id, seed), observation_space, action_space, prefix=prefix
    )


def _with_internal_keys(model_config: Any, module_id: Optional[str], seed: Optional[int]) -> Any:
    """``model_config`` plus ``module_id`` / ``seed`` where given (a non-mapping is left to the checks)."""
    extra = {}
    if module_id is not None:
        extra[MODULE_ID_KEY] = str(module_id)
    if seed is not None:
        extra[SEED_KEY] = int(seed)
    if not extra or not isinstance(model_config, (Mapping, type(None))):
        return model_config
    return {**(model_config or {}), **extra}


def _check_keys(model_config: Optional[Mapping[str, Any]]) -> Tuple[dict, CircuitSpec, Optional[CircuitSpec]]:
    """The space-free checks; keys relative to ``model_config``.

    Returns the keys with defaults filled in (and the internal keys, if given), the actor's
    circuit (every wire read out) and the quantum critic's circuit (``None`` for a classical critic).
    """
    if model_config is None:
        model_config = {}
    if not isinstance(model_config, Mapping):
        raise ConfigError("", f"must be a dict, got {type(model_config).__name__}")
    tolerated = set(DEFAULT_MODEL_CONFIG) | set(INTERNAL_KEYS) | rllib_model_config_keys()
    unknown = sorted(str(k) for k in set(model_config) - tolerated)
    if unknown:
        raise ConfigError("", f"unknown key(s) {unknown}; allowed: {sorted(DEFAULT_MODEL_CONFIG)}")
    cfg = copy.deepcopy(DEFAULT_MODEL_CONFIG)
    for key in DEFAULT_MODEL_CONFIG:
        if key in model_config:
            cfg[key] = copy.deepcopy(model_config[key])
    if model_config.get(MODULE_ID_KEY) is not None:
        if not isinstance(model_config[MODULE_ID_KEY], str):
            raise ConfigError(MODULE_ID_KEY, f"must be a str, got {model_config[MODULE_ID_KEY]!r}")
        cfg[MODULE_ID_KEY] = model_config[MODULE_ID_KEY]
    if model_config.get(SEED_KEY) is not None:
        seed = model_config[SEED_KEY]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(SEED_KEY, f"must be an int, got {seed!r}")
        cfg[SEED_KEY] = int(seed)
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
    natural = _natural_gradient(cfg["natural_gradient"], actor_spec)
    cfg["natural_gradient"] = None if natural is None else natural.to_dict()
    cfg["inverse_temperature"] = _inverse_temperature(cfg["inverse_temperature"])
    if cfg["mirror"] is not None:
        cfg["mirror"] = MirrorConfig.from_dict(cfg["mirror"]).to_dict()
    critic_spec = None
    if cfg["critic"] == "quantum":
        critic = {**circuit, **cfg["critic_circuit"], "n_outputs": None}  # all wires read out
        critic_spec = CircuitSpec.from_config(critic, prefix="critic_circuit")
        if critic_spec.n_qubits != actor_spec.n_qubits:
            raise ConfigError(
                "critic_circuit.n_qubits",
                f"must equal circuit.n_qubits ({actor_spec.n_qubits}): both circuits read the same encoder output, "
                f"got {critic_spec.n_qubits}",
            )
    elif cfg["critic_circuit"]:
        raise ConfigError("critic_circuit", "is only used with critic: 'quantum' (got critic: 'classical')")
    return cfg, actor_spec, critic_spec


ACTION_HEADS = ("categorical", "multi_categorical", "diag_gaussian")


@dataclasses.dataclass(frozen=True)
class ActionHead:
    """The policy's action distribution and how many read-out numbers each part takes.

    Args:
        kind: ``"categorical"`` (``Discrete``), ``"multi_categorical"`` (``MultiDiscrete``: one
            categorical per entry of ``nvec``) or ``"diag_gaussian"`` (1-D ``Box``: the read-outs
            are the means; the log-stds are a separate, state-independent parameter).
        sizes: read-out numbers per part: ``(n,)``, ``nvec``, or ``(action dims,)``.

    Example:
        >>> import gymnasium as gym
        >>> head = ActionHead.for_space(gym.spaces.MultiDiscrete([3, 2]))
        >>> head, head.n_logits
        (ActionHead(kind='multi_categorical', sizes=(3, 2)), 5)
    """

    kind: str
    sizes: Tuple[int, ...]

    def __post_init__(self) -> None:
        _choice("kind", self.kind, ACTION_HEADS)
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))

    @property
    def n_logits(self) -> int:
        """How many numbers the actor's read-out makes (logits, or Gaussian means)."""
        return sum(self.sizes)

    @classmethod
    def for_space(cls, action_space: gym.Space) -> "ActionHead":
        """The head for ``action_space``; ``ConfigError`` keyed ``action_space`` for any other space."""
        if isinstance(action_space, gym.spaces.Discrete):
            return cls("categorical", (int(action_space.n),))
        if isinstance(action_space, gym.spaces.MultiDiscrete) and np.asarray(action_space.nvec).ndim == 1:
            return cls("multi_categorical", tuple(int(n) for n in np.asarray(action_space.nvec)))
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return cls("diag_gaussian", (int(action_space.shape[0]),))
        raise ConfigError(
            "action_space",
            f"must be Discrete, (1-D) MultiDiscrete or a 1-D Box (QuantumPPORLModule takes no other), got {action_space}",
        )


class _ReadOnlyDict(Mapping):
    """A read-only, hashable mapping that pickles (``types.MappingProxyType`` does not)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self):
        return (type(self), (self._data,))


@dataclasses.dataclass(frozen=True)
class QuantumModelConfig:
    """Every option of a :class:`QuantumPPORLModule`, validated and resolved for its spaces.

    Build it with :meth:`from_dict` (the one parser of a ``model_config``); :meth:`to_dict` gives
    the plain dict for ``RLModuleSpec.model_config`` back (``from_dict(to_dict())`` is equal).
    Frozen: the spec builders and the module's ``setup()`` read the same values.

    Args:
        actor: the actor circuit; ``n_outputs`` is ``action_head.n_logits`` for the ``"expval"``
            read-out, ``n_qubits`` for ``"linear"``.
        readout: ``"expval"`` (logits = output-scaled ``<Z_i>`` of the first wires) or
            ``"linear"`` (a linear layer on all ``actor.n_readouts`` read-outs: every ``<Z_i>``,
            and every ``<Z_i Z_j>`` with ``observables="Z+ZZ"``).
        action_head: the action distribution and its sizes (:class:`ActionHead`).
        encoder: ``"none"`` (zero-pad the vector), ``"linear"`` or ``"cnn"``.
        input_shape: the flattened observation the encoder takes (``(D,)`` or ``(H, W, C)``).
        conv_filters: the CNN's ``(out_channels, kernel, stride)`` layers; ``()`` without a CNN.
        critic: ``"classical"`` (MLP on the encoder output) or ``"quantum"``.
        critic_circuit: the quantum critic's circuit (every wire read out), else ``None``.
        critic_hiddens: hidden sizes of the classical critic MLP; ``()`` for a quantum critic.
        lr_multipliers: read-only mapping, parameter group -> learning-rate factor.
        natural_gradient: natural-gradient steps for the actor (:class:`NaturalGradientConfig`), or
            ``None`` (Adam for every parameter).
        inverse_temperature: the categorical logits' factor: a float, or a schedule of ``(env
            steps, value)`` pairs (:func:`inverse_temperature_at`); ``1.0`` leaves the logits as
            the read-out gives them.
        mirror: the reflection the policy and critic are made equivariant under
            (:class:`MirrorConfig`), or ``None``.
        module_id: the module's id (named in its errors), if a spec builder set it.
        seed: the experiment seed of the seeded parameter init, if any.
        action_mask_keys: with an observation ``Dict`` that carries an ``"action_mask"`` for the
            ``Discrete`` actions, the entries the policy reads (the logits of masked actions
            are pushed to the float minimum); ``None`` otherwise. Derived from the spaces.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> obs, act = gym.spaces.Box(-1, 1, (12,), np.float32), gym.spaces.Discrete(3)
        >>> cfg = QuantumModelConfig.from_dict({"circuit": {"n_qubits": 5}, "critic": "quantum"}, obs, act)
        >>> cfg.encoder, cfg.readout, cfg.actor.n_outputs, cfg.critic_circuit.n_outputs
        ('linear', 'expval', 3, 5)
        >>> cfg.action_head, cfg.lr_multipliers["circuit"]
        (ActionHead(kind='categorical', sizes=(3,)), 1.0)
        >>> QuantumModelConfig.from_dict(cfg.to_dict(), obs, act) == cfg
        True
        >>> cfg.readout = "linear"
        Traceback (most recent call last):
        ...
        dataclasses.FrozenInstanceError: cannot assign to field 'readout'
    """

    actor: CircuitSpec
    readout: str
    action_head: ActionHead
    encoder: str
    input_shape: Tuple[int, ...]
    conv_filters: Tuple[Tuple[int, int, int], ...]
    critic: str
    critic_circuit: Optional[CircuitSpec]
    critic_hiddens: Tuple[int, ...]
    lr_multipliers: Mapping[str, float]
    natural_gradient: Optional[NaturalGradientConfig] = None
    inverse_temperature: Any = 1.0  # float, or ((env_steps, value), ...)
    mirror: Optional[MirrorConfig] = None
    module_id: Optional[str] = None
    seed: Optional[int] = None
    # Derived from the spaces, not a key: the observation entries the policy reads when the space
    # carries an "action_mask" (see observations.split_action_mask); None without a mask.
    action_mask_keys: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        # Plain containers in, immutable ones kept (so equal options compare, and hash, equal).
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "conv_filters", tuple(tuple(int(v) for v in f) for f in self.conv_filters))
        object.__setattr__(self, "critic_hiddens", tuple(int(h) for h in self.critic_hiddens))
        object.__setattr__(self, "lr_multipliers", _ReadOnlyDict(self.lr_multipliers))

    @property
    def n_qubits(self) -> int:
        """The register size (actor and quantum critic alike)."""
        return self.actor.n_qubits

    @classmethod
    def from_dict(
        cls,
        model_config: Optional[Mapping[str, Any]],
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        module_id: Optional[str] = None,
        seed: Optional[int] = None,
        prefix: str = "",
    ) -> "QuantumModelConfig":
        """Validates ``model_config`` and resolves it for the spaces.

        Args:
            model_config: user keys (see :data:`DEFAULT_MODEL_CONFIG`; ``None``: all defaults).
                Keys of RLlib's ``DefaultModelConfig`` (which RLlib merges in) are ignored
                (``validate_model_config`` and ``spec_model_config``, the user-facing checks,
                refuse them);
                ``"module_id"`` and ``"seed"`` (written by :meth:`to_dict`) are read.
            observation_space: the module's observation space (any space of
                :data:`~rllib_quantum.modules.observations.SUPPORTED`).
            action_space: ``Discrete``, 1-D ``MultiDiscrete`` or a 1-D ``Box``.
            module_id, seed: set (override) the ``"module_id"`` / ``"seed"`` keys.
            prefix: key path of ``model_config`` itself, put in front of every error's key.

        Raises:
            ConfigError: as :func:`validate_model_config`.
        """
        with reraise_under(prefix):
            cfg, actor, critic = _check_keys(_with_internal_keys(model_config, module_id, seed))
        head = ActionHead.for_space(action_space)
        with reraise_under(prefix):
            checked_inverse_temperature(cfg["inverse_temperature"], action_space)
        readout = _resolve_readout(cfg, head, prefix=prefix)
        policy_space, mask_keys = split_action_mask(observation_space, action_space)
        encoder, input_shape, conv_filters = _resolve_encoder(cfg, policy_space, prefix=prefix)
        mirror = None if cfg["mirror"] is None else MirrorConfig(**cfg["mirror"])
        if mirror is not None:
            with reraise_under(prefix):
                mirror.check_spaces(input_shape, head)
        return cls(
            actor=dataclasses.replace(actor, n_outputs=head.n_logits if readout == "expval" else actor.n_qubits),
            readout=readout,
            action_head=head,
            encoder=encoder,
            input_shape=input_shape,
            conv_filters=conv_filters if encoder == "cnn" else (),
            critic=cfg["critic"],
            critic_circuit=critic,
            critic_hiddens=cfg["critic_hiddens"] if critic is None else (),
            lr_multipliers=cfg["lr_multipliers"],
            natural_gradient=None if cfg["natural_gradient"] is None else NaturalGradientConfig(**cfg["natural_gradient"]),
            inverse_temperature=cfg["inverse_temperature"],
            mirror=mirror,
            module_id=cfg.get(MODULE_ID_KEY),
            seed=cfg.get(SEED_KEY),
            action_mask_keys=mask_keys,
        )

    def to_dict(self) -> dict:
        """The plain ``model_config`` dict (JSON-able; choices resolved, read-out wires left to
        the module) that :meth:`from_dict` turns back into an equal object.

        Example:
            >>> import gymnasium as gym
            >>> d = QuantumModelConfig.from_dict({}, gym.spaces.Box(0, 1, (7, 7, 3)), gym.spaces.Discrete(2)).to_dict()
            >>> d["encoder"], d["conv_filters"], d["critic_hiddens"], "n_outputs" in d["circuit"]
            ('cnn', [[16, 3, 1], [32, 3, 1]], [64, 64], False)
        """
        circuit = self.actor.to_config()
        del circuit["n_outputs"]  # not settable: follows from the read-out
        critic_circuit = {}
        if self.critic_circuit is not None:  # only what differs from the actor's circuit
            critic = self.critic_circuit.to_config()
            critic_circuit = {k: v for k, v in critic.items() if k != "n_outputs" and v != circuit[k]}
        out = {
            "circuit": circuit,
            "encoder": self.encoder,
            "conv_filters": [list(f) for f in self.conv_filters],
            "readout": self.readout,
            "critic": self.critic,
            "critic_circuit": critic_circuit,
            "critic_hiddens": list(self.critic_hiddens),
            "lr_multipliers": dict(self.lr_multipliers),
            "natural_gradient": None if self.natural_gradient is None else self.natural_gradient.to_dict(),
            "inverse_temperature": (
                self.inverse_temperature if isinstance(self.inverse_temperature, float)
                else [list(p) for p in self.inverse_temperature]
            ),
            "mirror": None if self.mirror is None else self.mirror.to_dict(),
        }
        if self.module_id is not None:
            out[MODULE_ID_KEY] = self.module_id
        if self.seed is not None:
            out[SEED_KEY] = self.seed
        return out


def _resolve_readout(cfg: Mapping[str, Any], head: ActionHead, *, prefix: str = "") -> str:
    """Which actor read-out ``cfg["readout"]`` means for this action head ("expval" or "linear").

    Raises ``ConfigError`` (key ``readout`` under ``prefix``) when they do not fit.
    """
    logits, n_qubits = head.n_logits, cfg["circuit"]["n_qubits"]
    readout = cfg["readout"]
    correlators = cfg["circuit"].get("observables", "Z") != "Z"
    if readout == "auto":
        return "expval" if logits <= n_qubits and not correlators else "linear"
    if readout == "expval" and correlators:
        raise ConfigError(
            "readout",
            f"'expval' reads one <Z> per logit, but circuit.observables is {cfg['circuit']['observables']!r} "
            f"(more read-outs than logits); use 'linear' (or 'auto'), or observables 'Z'",
        ).under(prefix)
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


def _resolve_conv_filters(cfg: Mapping[str, Any], shape: Tuple[int, ...], *, prefix: str = "") -> list:
    """The CNN layers for an image observation of ``shape``: ``cfg["conv_filters"]`` when they fit
    the frame; with ``encoder: auto`` and the default filters, small frames get
    :func:`fit_small_image_filters` (as RLlib's catalog picks filters by frame size); else
    :class:`ConfigError` on ``conv_filters``."""
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


def _resolve_encoder(cfg: Mapping[str, Any], observation_space: gym.Space, *, prefix: str = "") -> Tuple[str, tuple, list]:
    """Which encoder ``cfg["encoder"]`` means for this observation space: ``(kind, input shape,
    CNN layers)`` with kind "none", "linear" or "cnn" (the layers are ``cfg["conv_filters"]``
    unless the kind is "cnn").

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
    filters = cfg["conv_filters"]
    if choice == "cnn":
        if len(shape) != 3:
            raise ConfigError("encoder", f"'cnn' needs an image observation (H, W, C), got shape {shape}").under(prefix)
        filters = _resolve_conv_filters(cfg, shape, prefix=prefix)
    return choice, shape, filters
