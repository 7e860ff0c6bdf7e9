"""Environments: cooperative pong (features and pixels views), the joint-agent
wrapper, MPE simple spread (mpe2), and their stable Ray Tune names.

Importing this package is cheap (no Ray import): ``JointAgentEnv`` loads Ray's
``MultiAgentEnv`` on first access, the creators import Ray/SuperSuit when called.

Example:
    >>> from rllib_quantum.envs import COOPERATIVE_PONG, make_cooperative_pong, register_envs
    >>> register_envs()  # then PPOConfig().environment(COOPERATIVE_PONG, env_config={...})
    ['rllib_quantum/cooperative_pong', 'rllib_quantum/cooperative_pong_joint', 'rllib_quantum/simple_spread']
    >>> env = make_cooperative_pong({"obs": "features", "max_cycles": 300})
"""

from typing import Any

from rllib_quantum.envs.cooperative_pong import (
    CooperativePongFeatures,
    make_cooperative_pong,
    make_parallel_pong,
    random_action,
    scripted_tracker_action,
)
from rllib_quantum.envs.registration import (
    COOPERATIVE_PONG,
    COOPERATIVE_PONG_JOINT,
    ENV_CREATORS,
    ENV_VALIDATORS,
    SIMPLE_SPREAD,
    env_spaces,
    reference_returns,
    register_envs,
)
from rllib_quantum.envs.simple_spread import make_simple_spread, validate_simple_spread_config
from rllib_quantum.envs.validation import validate_pong_config

__all__ = [
    "COOPERATIVE_PONG",
    "COOPERATIVE_PONG_JOINT",
    "ENV_CREATORS",
    "ENV_VALIDATORS",
    "SIMPLE_SPREAD",
    "CooperativePongFeatures",
    "JointAgentEnv",
    "env_spaces",
    "make_cooperative_pong",
    "make_parallel_pong",
    "make_simple_spread",
    "random_action",
    "reference_returns",
    "register_envs",
    "scripted_tracker_action",
    "validate_pong_config",
    "validate_simple_spread_config",
]


def __getattr__(name: str) -> Any:
    # JointAgentEnv subclasses Ray's MultiAgentEnv (a ~3 s import): load it lazily.
    if name == "JointAgentEnv":
        from rllib_quantum.envs.joint import JointAgentEnv

        return JointAgentEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
