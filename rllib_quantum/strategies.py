"""Distribution strategies: how a multi-agent env's agents map to trained RLlib modules.

==============  ==========================================================================
``independent``  one module per agent (MADQRL): ``policy_mapping_fn: agent_id -> agent_id``
``shared``       one module for all agents (parameter sharing): ``agent_id -> "shared"``
``joint``        one centralized module on the joint env (all observations in, a
                 ``MultiDiscrete`` joint action out, rewards summed): ``any -> "joint"``
``averaged``     ``independent`` plus :class:`~rllib_quantum.callbacks.ParameterAveragingCallback`
==============  ==========================================================================

Every strategy works with ``module: quantum`` (:class:`QuantumPPORLModule`) and
``module: classical`` (RLlib's default PPO module).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional

import gymnasium as gym

from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.envs import COOPERATIVE_PONG, COOPERATIVE_PONG_JOINT
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules import (
    MirroredPPOTorchRLModule,
    QuantumPPORLModule,
    StackedQuantumMultiRLModule,
    TemperedPPOTorchRLModule,
    spec_model_config,
)
from rllib_quantum.modules.model_config import (
    INVERSE_TEMPERATURE_KEY,
    MIRROR_KEY,
    MirrorConfig,
    checked_inverse_temperature,
    rllib_model_config_keys,
)

STRATEGIES = ("independent", "shared", "joint", "averaged")
MODULE_KINDS = ("quantum", "classical")
SHARED_MODULE_ID = "shared"
JOINT_AGENT_ID = "joint"
# Env name -> its registered joint-agent variant.
JOINT_ENVS = {COOPERATIVE_PONG: COOPERATIVE_PONG_JOINT}


def agent_to_own_module(agent_id, episode=None, **kwargs):
    """``independent``/``joint`` mapping: every agent trains the module named like itself."""
    return agent_id


def agent_to_joint_module(agent_id, episode=None, **kwargs):
    """``joint`` mapping: the joint env's one agent (which moves every paddle) trains ``"joint"``."""
    return JOINT_AGENT_ID


def agent_to_shared_module(agent_id, episode=None, **kwargs):
    """``shared`` mapping: every agent acts with (and trains) the one shared module."""
    return SHARED_MODULE_ID


@dataclasses.dataclass
class StrategyPlan:
    """What a strategy asks of RLlib: the env to run, the modules and the agent -> module map."""

    strategy: str
    env: str
    module_ids: List[str]
    policy_mapping_fn: Callable
    agents_of_module: Dict[str, List[str]]

    @property
    def averaging(self) -> bool:
        return self.strategy == "averaged"


def plan_strategy(strategy: str, env: str, agent_ids: List[str]) -> StrategyPlan:
    """Maps ``agent_ids`` of ``env`` to modules under ``strategy``.

    Example:
        >>> plan = plan_strategy("shared", COOPERATIVE_PONG, ["paddle_0", "paddle_1"])
        >>> plan.module_ids, plan.policy_mapping_fn("paddle_1")
        (['shared'], 'shared')
    """
    if strategy not in STRATEGIES:
        raise ConfigError("strategy", f"must be one of {list(STRATEGIES)}, got {strategy!r}")
    agent_ids = [str(a) for a in agent_ids]
    if strategy in ("independent", "averaged"):
        return StrategyPlan(strategy, env, agent_ids, agent_to_own_module, {a: [a] for a in agent_ids})
    if strategy == "shared":
        return StrategyPlan(strategy, env, [SHARED_MODULE_ID], agent_to_shared_module, {SHARED_MODULE_ID: agent_ids})
    if env not in JOINT_ENVS:
        raise ConfigError(
            "strategy",
            f"'joint' needs a joint-agent variant of env {env!r}; available for: {sorted(JOINT_ENVS)} "
            "(wrap your env in rllib_quantum.envs.JointAgentEnv and use strategy 'independent' on it)",
        )
    return StrategyPlan(strategy, JOINT_ENVS[env], [JOINT_AGENT_ID], agent_to_joint_module, {JOINT_AGENT_ID: agent_ids})


def validate_classical_model_config(model_config: Optional[Mapping[str, Any]]) -> dict:
    """Checks keys against RLlib's ``DefaultModelConfig`` (the classical modules' options; see
    :func:`~rllib_quantum.modules.model_config.rllib_model_config_keys`).

    Raises ``ConfigError`` keyed ``""`` (the ``model_config`` itself: not a mapping, or unknown
    keys); the experiment loader reports it under ``model_config``.
    """
    if model_config is None:
        model_config = {}
    if not isinstance(model_config, Mapping):
        raise ConfigError("", f"must be a mapping of RLlib DefaultModelConfig keys, got {model_config!r}")
    model_config = dict(model_config)
    allowed = sorted(rllib_model_config_keys() | {INVERSE_TEMPERATURE_KEY, MIRROR_KEY})
    unknown = sorted(str(k) for k in set(model_config) - set(allowed))
    if unknown:
        raise ConfigError(
            "", f"unknown key(s) {unknown}; allowed (module: classical, RLlib DefaultModelConfig, "
            f"{INVERSE_TEMPERATURE_KEY!r} and {MIRROR_KEY!r}): {allowed}"
        )
    if INVERSE_TEMPERATURE_KEY in model_config:  # TemperedPPOTorchRLModule's key
        checked_inverse_temperature(model_config[INVERSE_TEMPERATURE_KEY])
    if model_config.get(MIRROR_KEY) is not None:  # MirroredPPOTorchRLModule's
        MirrorConfig.from_dict(model_config[MIRROR_KEY])
        if model_config.get("use_lstm"):
            raise ConfigError(MIRROR_KEY, "makes a feed-forward policy equivariant; it does not combine with use_lstm")
    return model_config


def module_spec(
    kind: str,
    model_config: Optional[Mapping[str, Any]] = None,
    observation_space: Optional[gym.Space] = None,
    action_space: Optional[gym.Space] = None,
    module_id: Optional[str] = None,
    seed: Optional[int] = None,
) -> RLModuleSpec:
    """An ``RLModuleSpec`` for a quantum or classical PPO module (validated now, not on a worker).

    Quantum modules also get ``module_id`` (named in their numerical-safety errors) and ``seed``
    (their parameter init draws from a generator seeded by seed and module id, so every process
    and every build order gives the same initial weights) in their ``model_config``.

    With both spaces known, the quantum module's ``model_config`` is
    :class:`~rllib_quantum.modules.QuantumModelConfig` ``.to_dict()``: resolved for the spaces,
    so the module's ``setup()`` rebuilds an equal object.

    Raises ``ConfigError`` keyed ``module``, or by the path inside ``model_config`` (see
    ``validate_model_config``).
    """
    if kind == "quantum":
        return RLModuleSpec(
            module_class=QuantumPPORLModule,
            observation_space=observation_space,
            action_space=action_space,
            model_config=spec_model_config(model_config, observation_space, action_space, module_id=module_id, seed=seed),
        )
    if kind == "classical":
        model_config = validate_classical_model_config(model_config)
        tempered = model_config.get(INVERSE_TEMPERATURE_KEY, 1.0) != 1.0
        if tempered:
            checked_inverse_temperature(model_config[INVERSE_TEMPERATURE_KEY], action_space)
        mirrored = model_config.get(MIRROR_KEY) is not None
        if not mirrored:
            model_config.pop(MIRROR_KEY, None)  # mirror: null (e.g. --set model_config.mirror=null) is RLlib's own module
        if mirrored and observation_space is not None and action_space is not None:
            MirrorConfig.from_dict(model_config[MIRROR_KEY]).check_spaces(observation_space.shape, action_space)
        return RLModuleSpec(
            module_class=MirroredPPOTorchRLModule if mirrored else TemperedPPOTorchRLModule if tempered else None,
            observation_space=observation_space,
            action_space=action_space,
            model_config=model_config,
        )
    raise ConfigError("module", f"must be one of {list(MODULE_KINDS)}, got {kind!r}")


def multi_module_spec(
    plan: StrategyPlan,
    kind: str,
    model_config: Optional[Mapping[str, Any]],
    observation_spaces: Mapping[str, gym.Space],
    action_spaces: Mapping[str, gym.Space],
    seed: Optional[int] = None,
    stack: bool = True,
) -> MultiRLModuleSpec:
    """One ``RLModuleSpec`` per module of ``plan``, each with the spaces of the agents it serves.

    Agents that share a module must have the same spaces (checked here). ``seed``: the experiment
    seed, for the quantum modules' parameter init (see :func:`module_spec`). ``stack``: quantum
    modules of one shape share each circuit call
    (:class:`~rllib_quantum.modules.StackedQuantumMultiRLModule`); results are the same either way.
    """
    specs = {}
    for module_id, agents in plan.agents_of_module.items():
        if plan.strategy == "joint":
            obs_space, act_space = observation_spaces[JOINT_AGENT_ID], action_spaces[JOINT_AGENT_ID]
        else:
            obs_space, act_space = observation_spaces[agents[0]], action_spaces[agents[0]]
            for other in agents[1:]:
                if observation_spaces[other] != obs_space or action_spaces[other] != act_space:
                    raise ConfigError(
                        "strategy",
                        f"{plan.strategy!r}: agents {agents[0]!r} and {other!r} share module {module_id!r} "
                        "but have different observation or action spaces",
                    )
        specs[module_id] = module_spec(kind, model_config, obs_space, act_space, module_id=module_id, seed=seed)
    stacked = stack and kind == "quantum" and len(specs) > 1
    return MultiRLModuleSpec(
        multi_rl_module_class=StackedQuantumMultiRLModule if stacked else MultiRLModule, rl_module_specs=specs
    )
