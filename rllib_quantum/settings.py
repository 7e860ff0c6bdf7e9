"""Checks of RLlib's own settings and of Tune stop criteria, on the driver, before Ray starts.

An experiment's ``ppo``, ``env_runners``, ``learners``, ``fault_tolerance`` and ``evaluation``
sections are keyword arguments of RLlib's ``PPOConfig`` methods; ``stop`` is Tune's stop criteria.
RLlib checks few of these values itself, and late (``ppo: {lr: fast}`` ends in a traceback from its
scheduler check, ``num_epochs: -1`` is accepted). Here every value is checked against:

1. :data:`RULES`: the range of the keys whose wrong values RLlib would not catch or would catch
   inside a worker (types, bounds, choices, schedules);
2. the type of RLlib's own default for every other key (a float default takes a number, a bool
   default ``true``/``false``, an int default an int);
3. RLlib's ``AlgorithmConfig.validate()``, whose ``ValueError`` is translated into a
   :class:`~rllib_quantum.errors.ConfigError` naming the key.

Stop criteria (:func:`check_stop`) must name a metric RLlib reports (:data:`STOP_METRICS`), with
a budget > 0, or a return the game can reach (at most its ceiling per agent).

Example:
    >>> check_section("ppo", {"gamma": 1.5})
    Traceback (most recent call last):
    ...
    rllib_quantum.errors.ConfigError: ppo.gamma: must be a number in [0, 1], got 1.5
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Optional

from rllib_quantum.errors import ConfigError

# key -> (kind, low, high, extra); kinds: "int", "num", "schedule" (a number or a list of
# [timestep, value] pairs), "choice" (extra: allowed values). low/high inclusive; "low_open": > low.
# "none" in extra: None is allowed too.
RULES: dict = {
    "ppo.lr": ("schedule", 0.0, None, {"low_open"}),
    "ppo.entropy_coeff": ("schedule", 0.0, None, set()),
    "ppo.gamma": ("num", 0.0, 1.0, set()),
    "ppo.lambda_": ("num", 0.0, 1.0, set()),
    "ppo.clip_param": ("num", 0.0, None, {"low_open"}),
    "ppo.vf_clip_param": ("num", 0.0, None, {"low_open"}),
    "ppo.vf_loss_coeff": ("num", 0.0, None, set()),
    "ppo.kl_coeff": ("num", 0.0, None, set()),
    "ppo.kl_target": ("num", 0.0, None, {"low_open"}),
    "ppo.num_epochs": ("int", 1, None, set()),
    "ppo.minibatch_size": ("int", 1, None, {"none"}),
    "ppo.train_batch_size_per_learner": ("int", 1, None, {"none"}),
    "ppo.train_batch_size": ("int", 1, None, set()),
    "ppo.grad_clip": ("num", 0.0, None, {"low_open", "none"}),
    "ppo.grad_clip_by": ("choice", None, None, ("value", "norm", "global_norm")),
    "env_runners.num_env_runners": ("int", 0, None, set()),
    "env_runners.num_envs_per_env_runner": ("int", 1, None, set()),
    "env_runners.num_cpus_per_env_runner": ("num", 0.0, None, set()),
    "env_runners.num_gpus_per_env_runner": ("num", 0.0, None, set()),
    "env_runners.rollout_fragment_length": ("int", 1, None, {"auto"}),
    "env_runners.sample_timeout_s": ("num", 0.0, None, {"low_open", "none"}),
    "env_runners.batch_mode": ("choice", None, None, ("truncate_episodes", "complete_episodes")),
    "learners.num_learners": ("int", 0, None, set()),
    "learners.num_cpus_per_learner": ("num", 0.0, None, {"auto"}),
    "learners.num_gpus_per_learner": ("num", 0.0, None, set()),
    "fault_tolerance.max_num_env_runner_restarts": ("int", 0, None, set()),
    "fault_tolerance.delay_between_env_runner_restarts_s": ("num", 0.0, None, set()),
    "fault_tolerance.num_consecutive_env_runner_failures_tolerance": ("int", 0, None, set()),
    "fault_tolerance.env_runner_health_probe_timeout_s": ("num", 0.0, None, {"low_open"}),
    "fault_tolerance.env_runner_restore_timeout_s": ("num", 0.0, None, {"low_open"}),
    "evaluation.evaluation_interval": ("int", 1, None, {"none"}),
    "evaluation.evaluation_duration": ("int", 1, None, {"auto"}),
    "evaluation.evaluation_duration_unit": ("choice", None, None, ("episodes", "timesteps")),
    "evaluation.evaluation_num_env_runners": ("int", 0, None, set()),
    "evaluation.evaluation_sample_timeout_s": ("num", 0.0, None, {"low_open"}),
}

# Metrics a `stop` criterion may name. Budgets stop the run once they are reached; goals stop it
# once a return or episode length is reached. "<agent>" / "<module>": an agent or module id.
STOP_BUDGETS = (
    "training_iteration",
    "time_total_s",
    "num_env_steps_sampled_lifetime",
    "env_runners/num_env_steps_sampled_lifetime",
    "env_runners/num_episodes_lifetime",
    "env_runners/num_agent_steps_sampled_lifetime/<agent>",
    "env_runners/num_module_steps_sampled_lifetime/<module>",
)
STOP_GOALS = (
    "env_runners/episode_return_mean",
    "env_runners/agent_episode_returns_mean/<agent>",
    "env_runners/module_episode_returns_mean/<module>",
    "env_runners/episode_len_mean",
)
STOP_METRICS = STOP_BUDGETS + STOP_GOALS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range_text(kind: str, low, high, extra) -> str:
    what = "an int" if kind == "int" else "a number"
    if low is not None and high is not None:
        text = f"{what} in [{low:g}, {high:g}]"
    elif low is not None:
        text = f"{what} {'>' if 'low_open' in extra else '>='} {low:g}"
    else:
        text = what
    if kind == "schedule":
        text += f", or a schedule [[timestep, value], ...] of such values"
    if "auto" in extra:
        text += " or 'auto'"
    if "none" in extra:
        text += " or null"
    return text


def _in_range(value: Any, kind: str, low, high, extra) -> bool:
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return False
    if not _is_number(value):
        return False
    if low is not None and (value <= low if "low_open" in extra else value < low):
        return False
    return high is None or value <= high


def check_value(key: str, value: Any) -> None:
    """Raises :class:`ConfigError` if ``value`` breaks :data:`RULES` for ``key`` (``section.name``)."""
    kind, low, high, extra = RULES[key]
    if kind == "choice":
        if value not in extra:
            raise ConfigError(key, f"must be one of {list(extra)}, got {value!r}")
        return
    if value is None and "none" in extra or value == "auto" and "auto" in extra:
        return
    if kind == "schedule" and isinstance(value, (list, tuple)):
        pairs_ok = len(value) >= 2 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and _is_number(p[0]) and p[0] >= 0
            and _in_range(p[1], "num", low, high, extra)
            for p in value
        )
        if pairs_ok and value[0][0] == 0:
            return
        raise ConfigError(
            key,
            f"must be {_range_text(kind, low, high, extra)} (at least 2 pairs, the first at timestep 0), got {value!r}",
        )
    if not _in_range(value, "num" if kind == "schedule" else kind, low, high, extra):
        raise ConfigError(key, f"must be {_range_text(kind, low, high, extra)}, got {value!r}")


def _default_type_problem(default: Any, value: Any) -> Optional[str]:
    """What is wrong with ``value`` given RLlib's default for the key, or None."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an int"
    if isinstance(default, float):
        return None if _is_number(value) else "must be a number"
    return None


def check_section(section: str, given: Mapping[str, Any], defaults: Any = None) -> None:
    """Checks one section's values: :data:`RULES`, then the type of RLlib's default (``defaults``:
    an ``AlgorithmConfig`` to read them from; default ``PPOConfig()``)."""
    for name, value in given.items():
        key = f"{section}.{name}"
        if key in RULES:
            check_value(key, value)
            continue
        if defaults is None:
            from ray.rllib.algorithms.ppo import PPOConfig

            defaults = PPOConfig()
        problem = _default_type_problem(getattr(defaults, name, None), value)
        if problem:
            raise ConfigError(key, f"{problem} (RLlib's default is {getattr(defaults, name)!r}), got {value!r}")


def translate_rllib_error(err: Exception, sections: Mapping[str, Iterable[str]]) -> ConfigError:
    """RLlib's own validation error as a :class:`ConfigError` on the key it names.

    RLlib writes the offending setting in backticks (``"`minibatch_size` (100000) must be <= ..."``);
    the first backticked name that is a key of one of ``sections`` (``{"ppo": keys, ...}``)
    becomes the key path, else the whole RLlib config is named.
    """
    text = " ".join(str(err).split())
    for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text):
        for section, keys in sections.items():
            if name in keys:
                return ConfigError(f"{section}.{name}", f"refused by RLlib: {text}")
    return ConfigError("ppo", f"refused by RLlib: {text}")


def check_stop(
    stop: Any,
    agents: Iterable[str],
    modules: Iterable[str],
    ceiling_per_agent: Optional[float] = None,
    max_episode_len: Optional[int] = None,
) -> dict:
    """Checks Tune stop criteria; returns them as a dict.

    Args:
        stop: ``{metric: value}``; the run stops when any metric reaches its value.
        agents, modules: the experiment's agent and module ids (for per-agent/module metrics).
        ceiling_per_agent: the best return an agent can reach per episode, if known: a return goal
            above it can never trigger.
        max_episode_len: the longest episode, if known (for ``episode_len_mean``).

    Example:
        >>> check_stop({"training_iteration": 0}, ["a"], ["a"])
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: stop.training_iteration: must be an int >= 1 (a budget), got 0
    """
    agents, modules = list(agents), list(modules)
    if not isinstance(stop, Mapping) or not stop:
        raise ConfigError("stop", f"must be a non-empty mapping of metric: value, e.g. {{training_iteration: 10}}, got {stop!r}")
    allowed = [m.replace("<agent>", a) for m in STOP_METRICS if "<agent>" in m for a in agents]
    allowed += [m.replace("<module>", mid) for m in STOP_METRICS if "<module>" in m for mid in modules]
    allowed += [m for m in STOP_METRICS if "<" not in m]
    out = {}
    for metric, value in stop.items():
        key = f"stop.{metric}"
        if metric not in allowed:
            raise ConfigError(
                key,
                f"unknown metric {metric!r}; allowed: {[m for m in STOP_METRICS]} "
                f"(agents: {agents}, modules: {modules})",
            )
        budget = any(metric == m or metric.startswith(m.split("<")[0]) and "<" in m for m in STOP_BUDGETS)
        if budget:
            if metric == "training_iteration":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(key, f"must be an int >= 1 (a budget), got {value!r}")
            elif not _is_number(value) or value <= 0:
                raise ConfigError(key, f"must be a number > 0 (a budget), got {value!r}")
        else:
            if not _is_number(value):
                raise ConfigError(key, f"must be a finite number (a goal), got {value!r}")
            if "episode_len" in metric:
                if value <= 0 or (max_episode_len and value > max_episode_len):
                    raise ConfigError(
                        key, f"must be in (0, {max_episode_len or 'inf'}] (episodes end by then): it can never trigger, got {value!r}"
                    )
            elif ceiling_per_agent is not None:
                best = ceiling_per_agent * (len(agents) if metric.endswith("episode_return_mean") else 1)
                if metric.startswith("env_runners/module_episode_returns_mean/"):
                    best = None  # a module may serve several agents
                if best is not None and value > best:
                    raise ConfigError(key, f"must be <= {best:g}, the best return reachable per episode: it can never trigger, got {value!r}")
        out[metric] = value
    return out
