"""MPE simple spread (``mpe2.simple_spread_v3``, parallel API) as an RLlib multi-agent env.

``N`` agents (``agent_0`` ... ``agent_{N-1}``) and ``N`` landmarks: the agents are rewarded together
for covering every landmark and each is penalised for its collisions (``local_ratio`` weighs the
two). Each agent observes ``6 * N`` numbers (own velocity and position, landmarks, the other agents
and their communication): ``Box(-inf, inf, (6N,), float32)``. Actions: ``Discrete(5)`` (stay, left,
right, down, up), or with ``continuous_actions`` a ``Box(0, 1, (5,), float32)`` of forces.
Episodes are truncated after ``max_cycles`` steps.

The validator needs only the standard library (config code checks an experiment before any Ray
worker starts); mpe2 and Ray are imported when an env is made.

Example:
    >>> from rllib_quantum.envs.simple_spread import make_simple_spread, validate_simple_spread_config
    >>> validate_simple_spread_config({"N": 2})
    {'N': 2, 'continuous_actions': False, 'max_cycles': 25, 'local_ratio': 0.5}
    >>> env = make_simple_spread({"N": 2, "continuous_actions": True})
    >>> env.possible_agents, env.get_observation_space("agent_0").shape, env.get_action_space("agent_1")
    (['agent_0', 'agent_1'], (12,), Box(0.0, 1.0, (5,), float32))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from rllib_quantum.errors import ConfigError

# Defaults of mpe2.simple_spread_v3 (mpe2 1.1.1) for the keys we pass on.
SIMPLE_SPREAD_DEFAULTS: dict[str, Any] = {
    "N": 3,
    "continuous_actions": False,
    "max_cycles": 25,
    "local_ratio": 0.5,
}


def validate_simple_spread_config(env_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a simple spread ``env_config`` and fill in the defaults.

    Args:
        env_config: Mapping (a plain dict or RLlib's ``EnvContext``) with any of ``N`` (number of
            agents and landmarks, int >= 1, default 3), ``continuous_actions`` (bool, default
            false: ``Discrete(5)``; true: ``Box(0, 1, (5,))``), ``max_cycles`` (steps per episode,
            int >= 1, default 25) and ``local_ratio`` (weight of the local collision penalty
            against the shared coverage reward, a number in [0, 1], default 0.5). ``None`` means
            all defaults.

    Returns:
        A new plain dict holding every key, defaults filled in.

    Raises:
        ConfigError: not a mapping or unknown keys (``key`` ``""``: the section itself), or a
            value of the wrong type or out of range (``key`` names it, e.g. ``"N"``). The
            experiment loader and the registered env creator report ``env_config.N: ...``.

    Example:
        >>> validate_simple_spread_config({"N": 0})
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: N: must be an int >= 1 (number of agents and landmarks), got 0 (int)
        >>> validate_simple_spread_config({"n_agents": 2})
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: unknown key(s) ['n_agents']; allowed: ['N', 'continuous_actions', 'max_cycles', 'local_ratio']
    """
    if env_config is None:
        env_config = {}
    if not isinstance(env_config, Mapping):
        raise ConfigError("", f"must be a dict (or None), got {type(env_config).__name__}")
    unknown = sorted(str(k) for k in env_config if k not in SIMPLE_SPREAD_DEFAULTS)
    if unknown:
        raise ConfigError("", f"unknown key(s) {unknown}; allowed: {list(SIMPLE_SPREAD_DEFAULTS)}")
    config = {key: env_config.get(key, default) for key, default in SIMPLE_SPREAD_DEFAULTS.items()}
    for key, what in (("N", "number of agents and landmarks"), ("max_cycles", "steps per episode")):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(key, f"must be an int >= 1 ({what}), got {value!r} ({type(value).__name__})")
        config[key] = int(value)
    value = config["continuous_actions"]
    if not isinstance(value, bool):
        raise ConfigError(
            "continuous_actions",
            f"must be true (Box(0, 1, (5,)) actions) or false (Discrete(5)), got {value!r} ({type(value).__name__})",
        )
    value = config["local_ratio"]
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not 0.0 <= value <= 1.0):
        raise ConfigError(
            "local_ratio",
            f"must be a number in [0, 1] (weight of the local collision penalty), got {value!r} ({type(value).__name__})",
        )
    config["local_ratio"] = float(value)
    return config


def make_simple_spread(env_config: Mapping[str, Any] | None = None):
    """RLlib ``MultiAgentEnv`` creator for simple spread.

    Args:
        env_config: see :func:`validate_simple_spread_config`; RLlib's ``EnvContext`` works too.

    Returns:
        A ``ParallelPettingZooEnv`` with agents ``["agent_0", ..., "agent_{N-1}"]`` in that order
        and per-agent ``observation_spaces``/``action_spaces`` dicts.
    """
    from mpe2 import simple_spread_v3
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    config = validate_simple_spread_config(env_config)
    par_env = simple_spread_v3.parallel_env(**config)
    env = ParallelPettingZooEnv(par_env)
    # ParallelPettingZooEnv orders agents by a set; make the order stable and give the
    # RLlib 2.60 per-agent space dicts.
    agents = list(par_env.possible_agents)
    env.agents = list(agents)
    env.possible_agents = list(agents)
    env.observation_spaces = {a: par_env.observation_space(a) for a in agents}
    env.action_spaces = {a: par_env.action_space(a) for a in agents}
    return env
