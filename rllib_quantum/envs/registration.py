"""Stable Tune/RLlib names for the package's environments.

``register_envs()`` registers every name with ``ray.tune.registry.register_env``;
it works before or after ``ray.init()`` (Ray flushes pending registrations on
init). Ray forgets registrations at ``ray.shutdown()``, so call it again after
each new ``ray.init()``; calling it twice is harmless.

Example:
    >>> from rllib_quantum.envs import COOPERATIVE_PONG_JOINT, ENV_VALIDATORS, env_spaces
    >>> ENV_VALIDATORS[COOPERATIVE_PONG_JOINT]({"max_cycles": 300})["obs"]
    'features'
    >>> obs_spaces, act_spaces, agent_ids = env_spaces(COOPERATIVE_PONG_JOINT, {})
    >>> agent_ids, act_spaces["joint"]
    (['joint'], MultiDiscrete([3 3]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rllib_quantum.envs.simple_spread import validate_simple_spread_config
from rllib_quantum.envs.validation import GAME_DEFAULTS, validate_pong_config
from rllib_quantum.errors import ConfigError, reraise_under

COOPERATIVE_PONG = "rllib_quantum/cooperative_pong"
COOPERATIVE_PONG_JOINT = "rllib_quantum/cooperative_pong_joint"
SIMPLE_SPREAD = "rllib_quantum/simple_spread"


def _make_pong(env_config: Mapping[str, Any] | None = None):
    from rllib_quantum.envs.cooperative_pong import make_cooperative_pong

    from rllib_quantum.safety import report_errors

    with reraise_under("env_config"):  # RLlib users pass it as .environment(env_config=...)
        # report_errors: an exception in reset/step on a remote runner stops the run with its message
        return report_errors(make_cooperative_pong(env_config))


def _make_pong_joint(env_config: Mapping[str, Any] | None = None):
    from rllib_quantum.envs.joint import JointAgentEnv

    return JointAgentEnv(_make_pong(env_config))


def _make_simple_spread(env_config: Mapping[str, Any] | None = None):
    from rllib_quantum.envs.simple_spread import make_simple_spread
    from rllib_quantum.safety import report_errors

    with reraise_under("env_config"):
        return report_errors(make_simple_spread(env_config))


# Module-level functions, so Ray pickles them by reference (workers import them).
ENV_CREATORS: dict[str, Callable[[Mapping[str, Any] | None], Any]] = {
    COOPERATIVE_PONG: _make_pong,
    COOPERATIVE_PONG_JOINT: _make_pong_joint,
    SIMPLE_SPREAD: _make_simple_spread,
}
ENV_VALIDATORS: dict[str, Callable[[Mapping[str, Any] | None], dict[str, Any]]] = {
    COOPERATIVE_PONG: validate_pong_config,
    COOPERATIVE_PONG_JOINT: validate_pong_config,
    SIMPLE_SPREAD: validate_simple_spread_config,
}


def register_envs() -> list[str]:
    """Register the package's env names with Ray Tune (idempotent).

    Returns:
        The registered names: ``["rllib_quantum/cooperative_pong",
        "rllib_quantum/cooperative_pong_joint", "rllib_quantum/simple_spread"]``.

    Example:
        >>> from rllib_quantum.envs import register_envs
        >>> register_envs()
        ['rllib_quantum/cooperative_pong', 'rllib_quantum/cooperative_pong_joint', 'rllib_quantum/simple_spread']
    """
    from ray.tune.registry import register_env

    for name, creator in ENV_CREATORS.items():
        register_env(name, creator)
    return list(ENV_CREATORS)


def env_spaces(
    env_name: str, env_config: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Build the env once, locally, and read its per-agent spaces.

    Cheap for the features view (milliseconds); the pixels view renders one
    frame. ``env_config`` is validated first, so a bad config fails here with
    the validator's :class:`~rllib_quantum.errors.ConfigError` (key
    ``env_config.<key>``); an unknown ``env_name`` raises one keyed ``env``.

    Args:
        env_name: one of ``ENV_CREATORS`` (``COOPERATIVE_PONG``,
            ``COOPERATIVE_PONG_JOINT``, ``SIMPLE_SPREAD``).
        env_config: the env's config (see ``validate_pong_config``,
            ``validate_simple_spread_config``).

    Returns:
        ``(observation_spaces, action_spaces, agent_ids)``: two dicts keyed by
        agent id and the env's ``possible_agents`` list, in its order.

    Example:
        >>> obs_spaces, act_spaces, ids = env_spaces("rllib_quantum/cooperative_pong")
        >>> ids, obs_spaces["paddle_0"].shape
        (['paddle_0', 'paddle_1'], (5,))
        >>> obs_spaces, act_spaces, ids = env_spaces("rllib_quantum/simple_spread", {"N": 3})
        >>> ids, obs_spaces["agent_2"].shape, act_spaces["agent_2"]
        (['agent_0', 'agent_1', 'agent_2'], (18,), Discrete(5))
    """
    if env_name not in ENV_CREATORS:
        raise ConfigError(
            "env", f"must be one of {sorted(ENV_CREATORS)}, got {env_name!r}"
        )
    with reraise_under("env_config"):
        ENV_VALIDATORS[env_name](env_config)
    env = ENV_CREATORS[env_name](env_config)
    try:
        agent_ids = list(env.possible_agents)
        obs_spaces = {a: env.get_observation_space(a) for a in agent_ids}
        act_spaces = {a: env.get_action_space(a) for a in agent_ids}
    finally:
        env.close()
    return obs_spaces, act_spaces, agent_ids


# Per-paddle returns of cooperative pong with the game's default settings (max_cycles 900):
# random play (tests/test_envs.py measures it over 100 episodes) and the scripted "move toward the
# ball" tracker on the features view, which never misses (the ceiling).
RANDOM_RETURN_PER_PADDLE = -3.7
CEILING_RETURN_PER_PADDLE = 100.0


def reference_returns(env_name: str, env_config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Reference returns per agent for plots and summaries; ``{}`` when not known for this config.

    Known for cooperative pong with the game's default settings (either view): random play and
    the scripted tracker's ceiling, per paddle; the joint env's one agent gets the paddles' sum.
    Not known for other envs (simple spread: ``{}``, so no return goal is refused as unreachable).

    Example:
        >>> reference_returns(COOPERATIVE_PONG, {"obs": "features"})
        {'random play': -3.7, 'scripted tracker (ceiling)': 100.0}
        >>> reference_returns(COOPERATIVE_PONG, {"max_cycles": 300})
        {}
        >>> reference_returns(SIMPLE_SPREAD, {"N": 3})
        {}
    """
    if env_name not in (COOPERATIVE_PONG, COOPERATIVE_PONG_JOINT):
        return {}
    config = ENV_VALIDATORS[env_name](env_config)
    if any(config[key] != value for key, value in GAME_DEFAULTS.items()):
        return {}
    agents = 2 if env_name == COOPERATIVE_PONG_JOINT else 1
    return {"random play": RANDOM_RETURN_PER_PADDLE * agents, "scripted tracker (ceiling)": CEILING_RETURN_PER_PADDLE * agents}
