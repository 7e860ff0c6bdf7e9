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
    fault_tolerance: {restart_failed_env_runners: true}
    evaluation: {evaluation_interval: 10, evaluation_duration: 20, evaluation_config: {explore: false}}
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

from rllib_quantum import gc_freeze, safety
from rllib_quantum.envs import ENV_VALIDATORS, env_spaces, reference_returns, register_envs
from rllib_quantum.errors import ConfigError, reraise_under
from rllib_quantum.settings import RULES, check_section, check_stop, check_value, translate_rllib_error
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
    "fault_tolerance": "keyword arguments of AlgorithmConfig.fault_tolerance() (env runner restarts)",
    "evaluation": "keyword arguments of AlgorithmConfig.evaluation() (RLlib's periodic evaluation during training)",
    "stop": "Tune stop criteria, e.g. {training_iteration: 20}",
    "checkpoint": "{frequency: N, at_end: bool}",
    "seed": "int seed for RLlib (env runners and modules)",
    "stack_modules": "true (default): same-shaped quantum policies share each circuit call "
    "(StackedQuantumMultiRLModule); false: one call per module",
    "gc_freeze": "true (default): each process freezes the objects alive once it is built out of "
    "Python's garbage-collector scans (rllib_quantum.gc_freeze); false: Python's default collector",
}
REQUIRED_KEYS = ("env", "strategy", "module")
# The online keys of AlgorithmConfig.evaluation() (its offline-evaluation keys need offline data).
EVALUATION_KEYS = (
    "evaluation_interval",
    "evaluation_duration",
    "evaluation_duration_unit",
    "evaluation_num_env_runners",
    "evaluation_parallel_to_training",
    "evaluation_sample_timeout_s",
    "evaluation_force_reset_envs_before_iteration",
    "evaluation_config",
)
CHECKPOINT_KEYS = ("frequency", "at_end")


def _signature_keys(*methods) -> list:
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    keys = set()
    for method in methods:
        keys |= {k for k, p in inspect.signature(method).parameters.items() if k != "self" and p.kind in kinds}
    return sorted(keys)


def _check_kwargs(section: str, given: Any, *methods, allowed: Optional[Iterable[str]] = None, unchecked: Iterable[str] = ()) -> dict:
    """``given`` must be a mapping of keyword arguments of ``methods`` (or of the ``allowed`` ones),
    each of a valid value (those in ``unchecked`` are left to the caller)."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(section, f"must be a mapping of keyword arguments, got {given!r}")
    allowed = list(allowed) if allowed is not None else _signature_keys(*methods)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(section, f"unknown key(s) {unknown}; allowed: {allowed}")
    check_section(section, {k: v for k, v in given.items() if k not in unchecked})
    return dict(given)


def parse_overrides(pairs: Iterable[str]) -> Dict[str, Any]:
    """``["ppo.lr=0.001", "env_config.obs=pixels"]`` -> ``{"ppo.lr": 0.001, ...}`` (values parsed as YAML)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expects key=value (dotted keys allowed, e.g. ppo.lr=0.001), got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(key.strip(), f"--set value {value!r} is not valid YAML ({getattr(err, 'problem', err)})") from None
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
                raise ConfigError(".".join(parts[: i + 1]), f"override {dotted!r} needs a mapping here, got {child!r}")
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
    """Checks a raw experiment dict and fills defaults; raises :class:`ConfigError` naming the key."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    if not isinstance(raw, Mapping):
        raise ConfigError("", f"an experiment config must be a mapping of keys {sorted(TOP_LEVEL_KEYS)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown config key(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ConfigError(missing[0], f"missing config key(s) {missing}: {', '.join(f'{k} ({TOP_LEVEL_KEYS[k]})' for k in missing)}")
    spec = copy.deepcopy(dict(raw))
    if spec["env"] not in ENV_VALIDATORS:
        raise ConfigError("env", f"must be one of {sorted(ENV_VALIDATORS)}, got {spec['env']!r}")
    with reraise_under("env_config"):
        spec["env_config"] = ENV_VALIDATORS[spec["env"]](spec.get("env_config") or {})
    if spec["strategy"] not in STRATEGIES:
        raise ConfigError("strategy", f"must be one of {list(STRATEGIES)}, got {spec['strategy']!r}")
    if spec["module"] not in MODULE_KINDS:
        raise ConfigError("module", f"must be one of {list(MODULE_KINDS)}, got {spec['module']!r}")
    if spec.get("averaging") is not None and spec["strategy"] != "averaged":
        raise ConfigError("averaging", f"is only used with strategy: averaged, got strategy: {spec['strategy']!r}")
    spec["ppo"] = _check_kwargs("ppo", spec.get("ppo"), PPOConfig.training, AlgorithmConfig.training)
    spec["env_runners"] = _check_kwargs("env_runners", spec.get("env_runners"), AlgorithmConfig.env_runners)
    spec["learners"] = _check_kwargs("learners", spec.get("learners"), AlgorithmConfig.learners)
    spec["fault_tolerance"] = _check_kwargs("fault_tolerance", spec.get("fault_tolerance"), AlgorithmConfig.fault_tolerance)
    spec["evaluation"] = _check_evaluation(spec.get("evaluation"), spec["env"], spec["env_config"])
    stop = spec.get("stop", {"training_iteration": 10})
    if not isinstance(stop, Mapping) or not stop:
        raise ConfigError("stop", f"must be a non-empty mapping of metric: value, e.g. {{training_iteration: 10}}, got {stop!r}")
    spec["stop"] = dict(stop)
    checkpoint = spec.get("checkpoint") or {}
    if not isinstance(checkpoint, Mapping):
        raise ConfigError("checkpoint", f"must be a mapping with keys {list(CHECKPOINT_KEYS)}, got {checkpoint!r}")
    bad = sorted(set(checkpoint) - set(CHECKPOINT_KEYS))
    if bad:
        raise ConfigError("checkpoint", f"unknown key(s) {bad}; allowed: {list(CHECKPOINT_KEYS)}")
    frequency = checkpoint.get("frequency", 0)
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 0:
        raise ConfigError("checkpoint.frequency", f"must be an int >= 0 (training iterations; 0: none), got {frequency!r}")
    if not isinstance(checkpoint.get("at_end", True), bool):
        raise ConfigError("checkpoint.at_end", f"must be true or false, got {checkpoint['at_end']!r}")
    spec["checkpoint"] = dict(checkpoint)
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError("seed", f"must be an int >= 0, got {seed!r}")
    for key in ("stack_modules", "gc_freeze"):
        if not isinstance(spec.setdefault(key, True), bool):
            raise ConfigError(key, f"must be true or false, got {spec[key]!r}")
    for key in ("name", "description"):
        if key in spec and not isinstance(spec[key], str):
            raise ConfigError(key, f"must be a string, got {spec[key]!r}")
    spec.setdefault("name", f"{spec['module']}-{spec['strategy']}")
    return spec


def _check_evaluation(given: Any, env: str, env_config: dict) -> dict:
    """The ``evaluation`` section: :data:`EVALUATION_KEYS` with valid values; ``evaluation_config``
    holds ``AlgorithmConfig`` settings for the evaluation runners only (``explore: false`` for greedy
    actions; an ``env_config`` there is checked like the top-level one, merged over it)."""
    out = _check_kwargs("evaluation", given, allowed=EVALUATION_KEYS, unchecked=("evaluation_config",))
    overrides = out.get("evaluation_config")
    if overrides is None:
        return out
    if not isinstance(overrides, Mapping):
        raise ConfigError("evaluation.evaluation_config", f"must be a mapping of AlgorithmConfig settings, e.g. {{explore: false}}, got {overrides!r}")
    from ray.rllib.algorithms.ppo import PPOConfig

    defaults = PPOConfig()
    unknown = sorted(str(k) for k in overrides if not isinstance(k, str) or k.startswith("_") or not hasattr(defaults, k))
    if unknown:
        raise ConfigError("evaluation.evaluation_config", f"unknown AlgorithmConfig setting(s) {unknown}, e.g. explore, env_config, num_envs_per_env_runner")
    for key, value in overrides.items():  # the rules of the section the key belongs to, else RLlib's default's type
        rule = next((f"{section}.{key}" for section in ("env_runners", "ppo", "learners") if f"{section}.{key}" in RULES), None)
        try:
            if rule:
                check_value(rule, value)
            else:
                check_section("evaluation_config", {key: value}, defaults)
        except ConfigError as err:
            raise ConfigError(f"evaluation.evaluation_config.{key}", err.problem) from None
    overrides = dict(overrides)
    if "env_config" in overrides:
        if not isinstance(overrides["env_config"], Mapping):
            raise ConfigError("evaluation.evaluation_config.env_config", f"must be a mapping, got {overrides['env_config']!r}")
        with reraise_under("evaluation.evaluation_config.env_config"):
            overrides["env_config"] = ENV_VALIDATORS[env]({**env_config, **overrides["env_config"]})
    out["evaluation_config"] = overrides
    return out


def _sections(spec: Mapping[str, Any]) -> dict:
    """The keys each RLlib section of ``spec`` may hold (for translating RLlib's errors)."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    return {
        "ppo": _signature_keys(PPOConfig.training, AlgorithmConfig.training),
        "env_runners": _signature_keys(AlgorithmConfig.env_runners),
        "learners": _signature_keys(AlgorithmConfig.learners),
        "fault_tolerance": _signature_keys(AlgorithmConfig.fault_tolerance),
        "evaluation": list(EVALUATION_KEYS),
    }


def _build_modules_locally(config) -> dict:
    """Every module built on the driver (milliseconds): an encoder or RLlib catalog that cannot take
    its observation fails here, naming the module, instead of inside an env runner."""
    spec = config.rl_module_spec
    return {module_id: build_module_checked(module_id, module_spec) for module_id, module_spec in spec.rl_module_specs.items()}


def build_module_checked(module_id: str, module_spec, key: str = "model_config"):
    """``module_spec.build()`` plus one exploration forward pass on a sampled observation (shapes
    that only clash in forward, e.g. a CNN larger than the frame, clash here); any failure is a
    :class:`ConfigError` under ``key`` that names the module and its spaces."""
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.utils.spaces.space_utils import batch as batch_of
    from ray.rllib.utils.torch_utils import convert_to_torch_tensor

    try:
        module = module_spec.build()
        obs = convert_to_torch_tensor(batch_of([module_spec.observation_space.sample()]))
        with torch.no_grad():
            module.forward_exploration({Columns.OBS: obs})
        return module
    except ConfigError as err:
        raise err.under(key) from None
    except Exception as err:  # RLlib's catalog (classical modules), torch shape errors
        raise ConfigError(
            key,
            f"module {module_id!r} cannot be built for observation space {module_spec.observation_space} "
            f"and action space {module_spec.action_space}: {type(err).__name__}: {err}",
        ) from None


def build_experiment(raw: Mapping[str, Any], overrides: Optional[Mapping[str, Any]] = None) -> Experiment:
    """Validates ``raw`` (+ dotted ``overrides``) and builds the ``PPOConfig``; starts no Ray workers.

    Every problem is a :class:`~rllib_quantum.errors.ConfigError` naming the key: our keys, RLlib's
    own settings (checked by :mod:`rllib_quantum.settings` and by RLlib's ``validate()``), the stop
    criteria, and modules that cannot be built for their spaces (built here, on the driver).
    """
    from ray.rllib.algorithms.ppo import PPOConfig

    spec = validate_spec(apply_overrides(raw, overrides))
    register_envs()
    plan = plan_strategy(spec["strategy"], spec["env"], env_spaces(spec["env"], spec["env_config"])[2])
    obs_spaces, act_spaces, agents = env_spaces(plan.env, spec["env_config"])
    try:
        modules = multi_module_spec(
        plan, spec["module"], spec.get("model_config"), obs_spaces, act_spaces, seed=spec.get("seed"), stack=spec["stack_modules"]
    )
    except ConfigError as err:  # the modules' keys live under model_config; strategy errors keep theirs
        raise (err if err.key.split(".")[0] in ("strategy", "module") else err.under("model_config")) from None
    levels = reference_returns(plan.env, spec["env_config"])
    spec["stop"] = check_stop(
        spec["stop"], agents, plan.module_ids,
        ceiling_per_agent=levels.get("scripted tracker (ceiling)"),
        max_episode_len=spec["env_config"].get("max_cycles"),
    )

    config = (
        PPOConfig()
        .framework("torch")
        .environment(plan.env, env_config=spec["env_config"])
        # A list, not a set: RLlib builds (and seeds, samples, shuffles) modules in this order, and a
        # set's order of strings changes from process to process (hash randomisation).
        .multi_agent(policies=list(plan.module_ids), policy_mapping_fn=plan.policy_mapping_fn)
        .rl_module(rl_module_spec=modules)
    )
    sections = _sections(spec)
    for section, method in (("env_runners", config.env_runners), ("learners", config.learners),
                            ("ppo", config.training), ("fault_tolerance", config.fault_tolerance),
                            ("evaluation", config.evaluation)):
        try:
            method(**spec[section])
        except (ValueError, TypeError) as err:
            raise translate_rllib_error(err, {section: sections[section]}) from None
    # quantum: per-group learning rates + circuit diagnostics; both: RLlib's PPO batching, vectorised;
    # a classical module with an inverse-temperature schedule needs the learner that follows it
    from rllib_quantum.learners import FastBatchingPPOTorchLearner, QuantumPPOTorchLearner

    tempered = "inverse_temperature" in (spec.get("model_config") or {})
    quantum_learner = spec["module"] == "quantum" or tempered
    config.learners(learner_class=QuantumPPOTorchLearner if quantum_learner else FastBatchingPPOTorchLearner)
    if spec["gc_freeze"]:  # the collector's scans skip what lives for the whole run (rllib_quantum.gc_freeze)
        gc_freeze.install(config)
    safety.install(config)  # a nan/inf or env error met by a remote env runner stops the run (rllib_quantum.safety)
    if spec.get("seed") is not None:
        config.debugging(seed=spec["seed"])
    try:
        config.validate()
    except (ValueError, TypeError) as err:
        raise translate_rllib_error(err, sections) from None
    built = _build_modules_locally(config)
    if plan.averaging:
        from rllib_quantum.callbacks import averaging_callback

        with reraise_under("averaging"):
            callback = averaging_callback(**(spec.get("averaging") or {}))
            # Module ids, parameter choice and shapes, checked on the locally built modules.
            callback.check_modules(plan.module_ids, built)
        config.callbacks(callback)
    return Experiment(spec["name"], spec, config, spec["stop"], plan, spec["checkpoint"])


def read_yaml(path: Union[str, Path], what: str = "experiment config") -> dict:
    """Reads one YAML mapping with safe loading; any problem is a :class:`ConfigError` naming the
    file (and the line and column for syntax errors and rejected tags such as ``!!python/...``).

    Example:
        >>> import tempfile, os
        >>> bad = os.path.join(tempfile.mkdtemp(), "bad.yaml")
        >>> _ = open(bad, "w").write("env: [unclosed\\n")
        >>> read_yaml(bad)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: .../bad.yaml: line 2, column 1: not valid YAML: ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = " ".join(str(err.problem or err.context).split())
        if isinstance(err, yaml.constructor.ConstructorError):
            problem += " (safe loading: plain YAML only, no !!python or other tags)"
        raise ConfigError(where, f"not valid YAML: {problem}", source=str(path)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError("", f"not valid YAML: {err}", source=str(path)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"the {what} must be a YAML mapping (key: value lines), got a {type(raw).__name__}", source=str(path))
    return raw


def load_experiment(path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> Experiment:
    """Reads a YAML experiment, applies dotted ``overrides``, validates, and builds it.

    Args:
        path: a YAML file (see this module's docstring for the keys).
        overrides: ``{"dotted.key": value}``, e.g. ``{"stop.training_iteration": 2}``.

    Raises:
        ConfigError: naming the file and the key path of the first bad value.
        FileNotFoundError: no such file.

    Example:
        >>> exp = load_experiment("configs/quantum_independent_pong_features.yaml",
        ...                       overrides={"stop.training_iteration": 2})
        >>> exp.plan.module_ids
        ['paddle_0', 'paddle_1']
    """
    raw = read_yaml(path)
    try:
        return build_experiment(raw, overrides)
    except ConfigError as err:
        raise err.in_file(str(path)) from None
