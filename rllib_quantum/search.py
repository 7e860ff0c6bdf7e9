"""Hyperparameter search over any experiment key, with Ray Tune.

A search file names a base experiment, the dotted keys to search and how, and a scheduler::

    base: ../configs/quantum_independent_pong_features.yaml   (relative to this file, or to the current folder)
    metric: env_runners/episode_return_mean
    mode: max
    num_samples: 8
    max_iterations: 20
    overrides: {ppo.train_batch_size_per_learner: 500}       # fixed for every trial
    scheduler: {type: asha, grace_period: 5, reduction_factor: 2}
    evaluation_episodes: 20                                  # greedy (and sampled) episodes on fresh seeds after the last iteration
    search_space:
      ppo.lr: {loguniform: [0.0003, 0.01]}
      model_config.circuit.n_layers: {choice: [1, 2, 3, 4]}

Each trial builds the base experiment with its sampled keys as overrides (so every key that
``--set`` takes can be searched, circuit keys included) and trains it for up to ``max_iterations``,
reporting RLlib's full result every iteration. Samples are validated before Ray starts: a search
that would build a bad experiment fails up front with a :class:`~rllib_quantum.errors.ConfigError`
naming the file and the key path, e.g. ``search.yaml: search_space.ppo.lr: ...`` or
``search.yaml: scheduler.type: ...``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import yaml

from rllib_quantum.config import _storage, build_experiment
from rllib_quantum.errors import ConfigError

SEARCH_KEYS = (
    "base", "metric", "mode", "num_samples", "max_iterations", "overrides", "scheduler", "search_space", "name",
    "evaluation_episodes",
)
# Result keys of the evaluations that end each trial (``evaluation_episodes`` > 0): the final
# policies played with greedy actions, and on the same env seeds with sampled actions.
GREEDY_EVAL_PREFIX = "greedy_evaluation"
SAMPLED_EVAL_PREFIX = "sampled_evaluation"
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint", "grid")
SCHEDULERS = ("fifo", "asha")
# Options each scheduler type takes from the file (time_attr, max_t, metric and mode are set by the
# search itself); ASHA's are keyword arguments of ray.tune.schedulers.ASHAScheduler.
SCHEDULER_OPTIONS = {"fifo": (), "asha": ("grace_period", "reduction_factor", "brackets", "stop_last_trials")}


def _distribution(key: str, spec: Any):
    from ray import tune

    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"search_space.{key}", f"must be one of {{{', '.join(d + ': ...' for d in DISTRIBUTIONS)}}}, got {spec!r}"
        )
    kind, args = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"search_space.{key}.{kind}", f"must be a non-empty list, got {args!r}")
        return tune.choice(args) if kind == "choice" else tune.grid_search(args)
    numbers = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) if isinstance(args, list) else False
    if not (numbers and len(args) == 2 and args[0] < args[1]):
        raise ConfigError(f"search_space.{key}.{kind}", f"must be [low, high] with low < high, got {args!r}")
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](*args)


def _candidates(spec: Any) -> list:
    """Values to try when validating a search space up front (ends and choices)."""
    kind, args = next(iter(spec.items()))
    return list(args) if kind in ("choice", "grid") else [args[0], args[1] - 1 if kind == "randint" else args[1]]


@dataclasses.dataclass
class Search:
    """A validated search: ``tuner(storage)`` runs it."""

    name: str
    base: dict
    overrides: dict
    search_space: dict
    metric: str
    mode: str
    num_samples: int
    max_iterations: int
    scheduler: dict
    evaluation_episodes: int = 0

    def trainable(self):
        """A Tune function trainable, with the resources PPO asks for on the base experiment."""
        from ray import tune

        base, overrides, max_iterations, episodes = self.base, self.overrides, self.max_iterations, self.evaluation_episodes
        metric = self.metric

        def run_trial(sampled: Dict[str, Any]) -> None:
            import ray.tune.trainable.trainable as trainable_module

            from rllib_quantum.envs import register_envs
            from rllib_quantum.evaluation import learner_modules

            register_envs()
            exp = build_experiment(base, {**overrides, **sampled})
            # The Algorithm built here is not Tune's trainable: it would make its own (empty) log
            # folder under ~/ray_results. Point it into this trial's folder instead.
            trainable_module.DEFAULT_STORAGE_PATH = tune.get_context().get_trial_dir()
            algo = exp.algo_config.build_algo()
            try:
                for iteration in range(1, max_iterations + 1):
                    result = algo.train()
                    result.pop("config", None)
                    _ensure_metric(result, metric)
                    if episodes and iteration == max_iterations:
                        modules = learner_modules(exp, algo)
                        result[GREEDY_EVAL_PREFIX] = final_evaluation(exp, modules, episodes, greedy=True)
                        result[SAMPLED_EVAL_PREFIX] = final_evaluation(exp, modules, episodes, greedy=False)
                    tune.report(result)
            finally:
                algo.stop()

        exp = build_experiment(base, overrides)
        return tune.with_resources(run_trial, exp.trainable.default_resource_request(exp.algo_config))

    def tuner(self, storage_path: Optional[str] = None, num_samples: Optional[int] = None, **run_kwargs):
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        options = {k: v for k, v in self.scheduler.items() if k != "type"}
        if self.scheduler.get("type", "fifo") == "asha":
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=self.max_iterations, **options)
        else:
            scheduler = FIFOScheduler()
        return tune.Tuner(
            self.trainable(),
            param_space={k: _distribution(k, v) for k, v in self.search_space.items()},
            tune_config=tune.TuneConfig(
                metric=self.metric, mode=self.mode, num_samples=num_samples or self.num_samples, scheduler=scheduler
            ),
            run_config=tune.RunConfig(name=self.name, storage_path=_storage(storage_path), **run_kwargs),
        )


def _ensure_metric(result: dict, metric: str) -> None:
    """Sets ``metric`` (a ``/``-path into the result) to NaN where RLlib did not report it: episode
    returns are missing until the first episode ends, and Tune rejects a result without its metric."""
    node = result
    *path, last = metric.split("/")
    for key in path:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node.setdefault(last, float("nan"))


def final_evaluation(exp, modules, episodes: int, greedy: bool) -> Dict[str, float]:
    """``modules`` played on ``episodes`` fresh env seeds with greedy or sampled actions (see
    :mod:`rllib_quantum.evaluation`): ``{"<agent>_mean": ..., "<agent>_ci95": ..., "episode_len_mean": ...}``."""
    from rllib_quantum.evaluation import evaluate_modules

    report = evaluate_modules(exp, modules, episodes=episodes, greedy=greedy)
    out = {"episode_len_mean": sum(report.lengths) / len(report.lengths)}
    for agent in report.returns:
        out[f"{agent}_mean"], out[f"{agent}_ci95"] = report.mean(agent), report.ci95(agent)
    return out


def load_search(path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> Search:
    """Reads and validates a search file (see the module docstring); starts nothing.

    Args:
        path: the search YAML; its ``base`` path is relative to the current folder or to the file.
        overrides: dotted keys fixed for every trial, on top of the file's ``overrides``.

    Raises:
        ConfigError: a bad entry of the file (``source`` is the file), keyed like
            ``search_space.ppo.lr`` (a bad distribution, or a searched value the experiment
            refuses), ``scheduler.type``, ``metric``, ``num_samples``; ``""`` for unknown keys.
        FileNotFoundError: the file or its ``base`` experiment does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search file {str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        base_path = _check_search_file(raw, path)
    except ConfigError as err:
        raise err.in_file(str(path)) from None
    base = yaml.safe_load(base_path.read_text())
    fixed = {**(raw.get("overrides") or {}), **(overrides or {})}
    space = raw["search_space"]
    # Validate every searched key at the ends of its range before any trial starts.
    build_experiment(base, fixed)
    for key, spec in space.items():
        for value in _candidates(spec):
            try:
                build_experiment(base, {**fixed, key: value})
            except (ValueError, TypeError) as err:
                reason = err.problem if isinstance(err, ConfigError) and err.key == key else str(err)
                raise ConfigError(f"search_space.{key}", f"value {value!r}: {reason}", str(path)) from None
    return Search(
        name=raw.get("name", f"search-{path.stem}"),
        base=base,
        overrides=fixed,
        search_space=copy.deepcopy(dict(space)),
        metric=raw["metric"],
        mode=raw.get("mode", "max"),
        num_samples=raw.get("num_samples", 4),
        max_iterations=raw.get("max_iterations", 10),
        scheduler=dict(raw.get("scheduler") or {"type": "fifo"}),
        evaluation_episodes=raw.get("evaluation_episodes", 0),
    )


def _int_at_least(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"must be an int >= {minimum}, got {value!r} ({type(value).__name__})")


def _check_scheduler(scheduler: Any) -> None:
    if not isinstance(scheduler, Mapping):
        raise ConfigError("scheduler", f"must be a mapping like {{type: asha, grace_period: 5}}, got {scheduler!r}")
    kind = scheduler.get("type", "fifo")
    if kind not in SCHEDULERS:
        raise ConfigError("scheduler.type", f"must be one of {list(SCHEDULERS)}, got {kind!r}")
    allowed = ["type", *SCHEDULER_OPTIONS[kind]]
    unknown = sorted(str(k) for k in set(scheduler) - set(allowed))
    if unknown:
        raise ConfigError("scheduler", f"unknown key(s) {unknown}; allowed (type: {kind}): {allowed}")
    for key in ("grace_period", "brackets"):
        if key in scheduler:
            _int_at_least(f"scheduler.{key}", scheduler[key], 1)
    factor = scheduler.get("reduction_factor", 2)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
        raise ConfigError("scheduler.reduction_factor", f"must be a number > 1, got {factor!r}")
    if not isinstance(scheduler.get("stop_last_trials", True), bool):
        raise ConfigError("scheduler.stop_last_trials", f"must be true or false, got {scheduler['stop_last_trials']!r}")


def _check_search_file(raw: Any, path: Path) -> Path:
    """Checks the search file's own keys (ConfigError, key paths relative to the file); returns the
    base experiment's path."""
    if not isinstance(raw, Mapping):
        raise ConfigError("", f"must be a mapping of search keys {list(SEARCH_KEYS)}, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in set(raw) - set(SEARCH_KEYS))
    if unknown:
        raise ConfigError("", f"unknown key(s) {unknown}; allowed: {list(SEARCH_KEYS)}")
    for key in ("base", "metric", "search_space"):
        if key not in raw:
            raise ConfigError(key, "is required (a search file needs 'base', 'metric' and 'search_space')")
    if not isinstance(raw["base"], str) or not raw["base"]:
        raise ConfigError("base", f"must be the path of an experiment YAML, got {raw['base']!r}")
    base_path = Path(raw["base"])
    if not base_path.is_file():
        base_path = path.parent / raw["base"]
    if not base_path.is_file():
        raise FileNotFoundError(f"{path}: base experiment {raw['base']!r} does not exist")
    metric = raw["metric"]
    if not isinstance(metric, str) or not metric:
        raise ConfigError("metric", f"must be a '/'-path into RLlib's result (e.g. env_runners/episode_return_mean), got {metric!r}")
    if raw.get("mode", "max") not in ("max", "min"):
        raise ConfigError("mode", f"must be one of ['max', 'min'], got {raw['mode']!r}")
    if "name" in raw and (not isinstance(raw["name"], str) or not raw["name"]):
        raise ConfigError("name", f"must be a non-empty str, got {raw['name']!r}")
    if not isinstance(raw.get("overrides") or {}, Mapping):
        raise ConfigError("overrides", f"must be a mapping of dotted keys to values, got {raw['overrides']!r}")
    space = raw["search_space"]
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("search_space", f"must be a non-empty mapping of dotted keys, got {space!r}")
    for key, spec in space.items():
        _distribution(str(key), spec)
    _check_scheduler(raw.get("scheduler") or {"type": "fifo"})
    _int_at_least("evaluation_episodes", raw.get("evaluation_episodes", 0), 0)
    for key, default in (("num_samples", 4), ("max_iterations", 10)):
        _int_at_least(key, raw.get(key, default), 1)
    return base_path


__all__ = ["Search", "load_search"]
