"""One string-hash seed for every Ray worker, so that a seeded multi-agent run repeats.

RLlib keeps agent and module ids in Python sets (``MultiAgentEpisode``, the env runner's per-step
batch per module). A set of strings iterates in an order that depends on the process's hash seed,
which Python draws at random for every process unless ``PYTHONHASHSEED`` is set. That order decides
which module draws its actions first from torch's one RNG and how the learner orders minibatches,
so with ``seed`` fixed a two-agent run still takes one of two different courses, chosen by the
process it lands in (README "Reproducibility"). Ray starts its workers (Tune trials, env runners,
learners) with the environment of ``ray.init``'s ``runtime_env``: :func:`reproducible_runtime_env`
puts one ``PYTHONHASHSEED`` there.

``rllib-quantum``'s commands, the benchmarks, the examples and the test session start Ray with it.
In your own script::

    ray.init(runtime_env=reproducible_runtime_env())

and, for an algorithm built in your own process (outside Tune, its local learner runs there, and
its env runner too with ``num_env_runners: 0``), start Python itself with ``PYTHONHASHSEED=0``.

Example:
    >>> env = reproducible_runtime_env({"env_vars": {"OMP_NUM_THREADS": "1"}}, hash_seed=0)
    >>> env["env_vars"] == {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    True
    >>> reproducible_runtime_env({"env_vars": {"PYTHONHASHSEED": "7"}})["env_vars"]["PYTHONHASHSEED"]
    '7'
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

from rllib_quantum.errors import ConfigError

HASH_SEED_VAR = "PYTHONHASHSEED"
DEFAULT_HASH_SEED = "0"
_MAX_HASH_SEED = 4294967295  # Python's limit for PYTHONHASHSEED


def _checked_hash_seed(value: Any, key: str) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if text == "random" or (text is not None and text.isdigit() and int(text) <= _MAX_HASH_SEED):
        return text
    raise ConfigError(key, f"must be an int in 0..{_MAX_HASH_SEED} or 'random' (as Python reads it), got {value!r}")


def reproducible_runtime_env(
    runtime_env: Optional[Mapping[str, Any]] = None, hash_seed: Union[int, str, None] = None
) -> dict:
    """A copy of the Ray ``runtime_env`` with ``PYTHONHASHSEED`` in its ``env_vars`` for every worker.

    Args:
        runtime_env: your runtime environment (``pip``, ``working_dir``, ``env_vars``, ...); kept
            as it is, including a ``PYTHONHASHSEED`` already in its ``env_vars``.
        hash_seed: the seed to set when ``runtime_env`` has none; default: this process's
            ``PYTHONHASHSEED`` if set, else ``"0"``. ``"random"`` gives every worker its own again.

    Returns:
        A new dict for ``ray.init(runtime_env=...)``.

    Raises:
        ConfigError: ``runtime_env`` or its ``env_vars`` is not a mapping, an env var is not a
            string, or the hash seed is neither an int in 0..4294967295 nor ``"random"``.
    """
    if runtime_env is None:
        runtime_env = {}
    if not isinstance(runtime_env, Mapping):
        raise ConfigError("runtime_env", f"must be a mapping (Ray's runtime_env), got {type(runtime_env).__name__}")
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(env_vars, Mapping):
        raise ConfigError("runtime_env.env_vars", f"must be a mapping of str to str, got {type(env_vars).__name__}")
    for name, value in env_vars.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"runtime_env.env_vars.{name}", f"Ray takes str names and values, got {value!r}")
    if HASH_SEED_VAR in env_vars:
        chosen = _checked_hash_seed(env_vars[HASH_SEED_VAR], f"runtime_env.env_vars.{HASH_SEED_VAR}")
    elif hash_seed is not None:
        chosen = _checked_hash_seed(hash_seed, "hash_seed")
    elif os.environ.get(HASH_SEED_VAR):
        chosen = _checked_hash_seed(os.environ[HASH_SEED_VAR], f"environment variable {HASH_SEED_VAR}")
    else:
        chosen = DEFAULT_HASH_SEED
    return {**runtime_env, "env_vars": {**env_vars, HASH_SEED_VAR: chosen}}
