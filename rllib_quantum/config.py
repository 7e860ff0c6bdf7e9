"""Experiments from YAML: load, validate (before Ray starts), build the RLlib ``PPOConfig``.

A config file is one experiment::

    name: quantum-independent-pong-features
    env: rllib_quantum/cooperative_pong
    env_config: {obs: features, max_cycles: 300}
    strategy: independent            # independent | shared | joint | averaged
    module: quantum                  # quantum | classical
    model_config:                    # QuantumPPORLModule keys, or RLlib DefaultModelConfig keys
      circuit: {n_qubits: 5, n_layers: 3}
    averaging: {every: 5}            # strategy averaged only: ParameterAveragingCallback options
    ppo: {lr: 0.003, train_batch_size_per_learner: 1000, minibatch_size: 250, num_epochs: 4}
    env_runners: {num_env_runners: 1}
    learners: {num_learners: 0}
    stop: {training_iteration: 20}
    seed: 0

:func:`load_experiment` returns an :class:`Experiment`; both Tune entry points run it::

    exp = load_experiment("configs/quantum_independent_pong_features.yaml")
    ray.tune.run(exp.trainable, **exp.tune_run_kwargs())
    ray.tune.Tuner(exp.trainable, param_space=exp.algo_config, run_config=exp.run_config()).fit()
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import yaml

from rllib_quantum.envs import ENV_VALIDATORS, env_spaces, register_envs
from rllib_quantum.strategies import MODULE_KINDS, STRATEGIES, StrategyPlan, multi_module_spec, plan_strategy

TOP_LEVEL_KEYS = {
    "name": "experiment name (Tune's folder name under the storage path)",
    "description": "free text",
    "env": f"registered env name, one of {sorted(ENV_VALIDATORS)}",
    "env_config": "dict passed to the env creator",
    "strategy": f"one of {list(STRATEGIES)}",
    "module": f"one of {list(MODULE_KINDS)}",
    "model_config": "dict for the modules",
    "averaging": "dict of ParameterAveragingCallback options (strategy: averaged)",
    "ppo": "keyword arguments of PPOConfig.training()",
    "env_runners": "keyword arguments of AlgorithmConfig.env_runners()",
    "learners": "keyword arguments of AlgorithmConfig.learners()",
    "stop": "Tune stop criteria, e.g. {training_iteration: 20}",
    "checkpoint": "{frequency: N, at_end: bool}",
    "seed": "int seed for RLlib (env runners and modules)",
}
REQUIRED_KEYS = ("env", "strategy", "module")
CHECKPOINT_KEYS = ("frequency", "at_end")


def _signature_keys(*methods) -> list:
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    keys = set()
    for method in methods:
        keys |= {k for k, p in inspect.signature(method).parameters.items() if k != "self" and p.kind in kinds}
    return sorted(keys)


def _check_kwargs(section: str, given: Any, *methods) -> dict:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"config key {section!r} must be a mapping, got {given!r}")
    allowed = _signature_keys(*methods)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {[f'{section}.{k}' for k in unknown]}; allowed: {allowed}")
    return dict(given)


def parse_overrides(pairs: Iterable[str]) -> Dict[str, Any]:
    """``["ppo.lr=0.001", "env_config.obs=pixels"]`` -> ``{"ppo.lr": 0.001, ...}`` (values parsed as YAML)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (dotted keys allowed, e.g. ppo.lr=0.001), got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Optional[Mapping[str, Any]]) -> dict:
    """Returns a copy of ``raw`` with dotted keys set (``{"model_config.circuit.n_qubits": 6}``)."""
    raw = copy.deepcopy(dict(raw))
    for dotted, value in (overrides or {}).items():
        parts = dotted.split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {dotted!r}: {'.'.join(parts[: i + 1])!r} is not a mapping (it is {child!r})")
            node = child
        node[parts[-1]] = value
    return raw


@dataclasses.dataclass
class Experiment:
    """A validated experiment: the RLlib ``PPOConfig`` plus what Tune needs to run it.

    Attributes:
        name: Tune experiment name.
        spec: the validated config dict (defaults filled in).
        algo_config: the ``PPOConfig`` (new API stack) with env, strategy, modules, callbacks.
        stop: Tune stop criteria.
        plan: which agents train which modules.
    """

    name: str
    spec: dict
    algo_config: Any
    stop: dict
    plan: StrategyPlan
    checkpoint: dict

    @property
    def trainable(self):
        """The RLlib algorithm class Tune runs (``PPO``)."""
        return self.algo_config.algo_class

    def run_config(self, storage_path: Optional[str] = None, **kwargs):
        """A ``ray.tune.RunConfig`` with this experiment's name, stop criteria and checkpointing."""
        from ray import tune

        return tune.RunConfig(
            name=self.name,
            storage_path=_storage(storage_path),
            stop=self.stop,
            checkpoint_config=self._checkpoint_config(),
            **kwargs,
        )

    def tune_run_kwargs(self, storage_path: Optional[str] = None, **kwargs) -> dict:
        """Keyword arguments for ``ray.tune.run(exp.trainable, **kwargs)``."""
        return dict(
            name=self.name,
            config=self.algo_config,
            stop=self.stop,
            storage_path=_storage(storage_path),
            checkpoint_config=self._checkpoint_config(),
            **kwargs,
        )

    def tuner(self, storage_path: Optional[str] = None, param_space=None, tune_config=None, **run_kwargs):
        """A ``ray.tune.Tuner`` for this experiment (``param_space`` defaults to the algo config)."""
        from ray import tune

        return tune.Tuner(
            self.trainable,
            param_space=self.algo_config if param_space is None else param_space,
            tune_config=tune_config,
            run_config=self.run_config(storage_path, **run_kwargs),
        )

    def build_modules(self):
        """The ``MultiRLModule`` built locally (for inspection: diagrams, parameter counts)."""
        return self.algo_config.rl_module_spec.build()

    def _checkpoint_config(self):
        from ray import tune

        return tune.CheckpointConfig(
            checkpoint_frequency=self.checkpoint.get("frequency", 0),
            checkpoint_at_end=self.checkpoint.get("at_end", True),
        )


def _storage(path: Optional[str]) -> str:
    """Tune needs an absolute path; default ``./results`` (not ``~/ray_results``)."""
    return os.path.abspath(path or os.environ.get("RLLIB_QUANTUM_STORAGE", "results"))


def validate_spec(raw: Mapping[str, Any]) -> dict:
    """Checks a raw experiment dict and fills defaults; raises naming the offending key."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    if not isinstance(raw, Mapping):
        raise TypeError(f"an experiment config must be a mapping of keys {sorted(TOP_LEVEL_KEYS)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ValueError(f"missing config key(s) {missing}: {', '.join(f'{k} ({TOP_LEVEL_KEYS[k]})' for k in missing)}")
    spec = copy.deepcopy(dict(raw))
    if spec["env"] not in ENV_VALIDATORS:
        raise ValueError(f"config key 'env' must be one of {sorted(ENV_VALIDATORS)}, got {spec['env']!r}")
    spec["env_config"] = ENV_VALIDATORS[spec["env"]](spec.get("env_config") or {})
    if spec["strategy"] not in STRATEGIES:
        raise ValueError(f"config key 'strategy' must be one of {list(STRATEGIES)}, got {spec['strategy']!r}")
    if spec["module"] not in MODULE_KINDS:
        raise ValueError(f"config key 'module' must be one of {list(MODULE_KINDS)}, got {spec['module']!r}")
    if spec.get("averaging") is not None and spec["strategy"] != "averaged":
        raise ValueError(f"config key 'averaging' is only used with strategy: averaged (got strategy: {spec['strategy']!r})")
    spec["ppo"] = _check_kwargs("ppo", spec.get("ppo"), PPOConfig.training, AlgorithmConfig.training)
    spec["env_runners"] = _check_kwargs("env_runners", spec.get("env_runners"), AlgorithmConfig.env_runners)
    spec["learners"] = _check_kwargs("learners", spec.get("learners"), AlgorithmConfig.learners)
    stop = spec.get("stop", {"training_iteration": 10})
    if not isinstance(stop, Mapping) or not stop:
        raise TypeError(f"config key 'stop' must be a non-empty mapping like {{training_iteration: 10}}, got {stop!r}")
    spec["stop"] = dict(stop)
    checkpoint = spec.get("checkpoint") or {}
    bad = sorted(set(checkpoint) - set(CHECKPOINT_KEYS)) if isinstance(checkpoint, Mapping) else [checkpoint]
    if bad:
        raise ValueError(f"unknown checkpoint key(s) {bad}; allowed: {list(CHECKPOINT_KEYS)}")
    spec["checkpoint"] = dict(checkpoint)
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"config key 'seed' must be an int, got {seed!r}")
    spec.setdefault("name", f"{spec['module']}-{spec['strategy']}")
    return spec


def build_experiment(raw: Mapping[str, Any], overrides: Optional[Mapping[str, Any]] = None) -> Experiment:
    """Validates ``raw`` (+ dotted ``overrides``) and builds the ``PPOConfig``; starts no Ray workers."""
    from ray.rllib.algorithms.ppo import PPOConfig

    spec = validate_spec(apply_overrides(raw, overrides))
    register_envs()
    plan = plan_strategy(spec["strategy"], spec["env"], env_spaces(spec["env"], spec["env_config"])[2])
    obs_spaces, act_spaces, _ = env_spaces(plan.env, spec["env_config"])
    modules = multi_module_spec(plan, spec["module"], spec.get("model_config"), obs_spaces, act_spaces)

    config = (
        PPOConfig()
        .framework("torch")
        .environment(plan.env, env_config=spec["env_config"])
        .multi_agent(policies=set(plan.module_ids), policy_mapping_fn=plan.policy_mapping_fn)
        .rl_module(rl_module_spec=modules)
        .env_runners(**spec["env_runners"])
        .learners(**spec["learners"])
        .training(**spec["ppo"])
    )
    if spec["module"] == "quantum":  # per-group learning rates + circuit diagnostics; RLlib's PPO otherwise
        from rllib_quantum.learners import QuantumPPOTorchLearner

        config.learners(learner_class=QuantumPPOTorchLearner)
    if spec.get("seed") is not None:
        config.debugging(seed=spec["seed"])
    if plan.averaging:
        from rllib_quantum.callbacks import averaging_callback

        callback = averaging_callback(**(spec.get("averaging") or {}))
        # Module ids, parameter choice and shapes, checked on locally built modules (milliseconds).
        callback.check_modules(plan.module_ids, config.rl_module_spec.build())
        config.callbacks(callback)
    return Experiment(spec["name"], spec, config, spec["stop"], plan, spec["checkpoint"])


def load_experiment(path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> Experiment:
    """Reads a YAML experiment, applies dotted ``overrides``, validates, and builds it.

    Args:
        path: a YAML file (see this module's docstring for the keys).
        overrides: ``{"dotted.key": value}``, e.g. ``{"stop.training_iteration": 2}``.

    Example:
        >>> exp = load_experiment("configs/quantum_independent_pong_features.yaml",
        ...                       overrides={"stop.training_iteration": 2})
        >>> exp.plan.module_ids
        ['paddle_0', 'paddle_1']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {str(path)!r} does not exist")
    with open(path) as f:
        raw = yaml.safe_load(f)
    try:
        return build_experiment(raw or {}, overrides)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path}: {err}") from None
