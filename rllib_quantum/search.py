"""Hyperparameter search over any experiment key, with Ray Tune.

A search file names a base experiment, the dotted keys to search and how, and a scheduler::

    base: ../configs/quantum_independent_pong_features.yaml   (relative to this file, or to the current folder)
    metric: env_runners/episode_return_mean
    mode: max
    num_samples: 8
    max_iterations: 20
    overrides: {ppo.train_batch_size_per_learner: 500}       # fixed for every trial
    scheduler: {type: asha, grace_period: 5, reduction_factor: 2}
    evaluation_episodes: 20                                  # greedy episodes on fresh seeds after the last iteration
    search_space:
      ppo.lr: {loguniform: [0.0003, 0.01]}
      model_config.circuit.n_layers: {choice: [1, 2, 3, 4]}

Each trial builds the base experiment with its sampled keys as overrides (so every key that
``--set`` takes can be searched, circuit keys included) and trains it for up to ``max_iterations``,
reporting RLlib's full result every iteration. Samples are validated before Ray starts: a search
that would build a bad experiment fails up front, naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import yaml

from rllib_quantum.config import _storage, build_experiment

SEARCH_KEYS = (
    "base", "metric", "mode", "num_samples", "max_iterations", "overrides", "scheduler", "search_space", "name",
    "evaluation_episodes",
)
# Result keys of the greedy evaluation that ends each trial (``evaluation_episodes`` > 0).
GREEDY_EVAL_PREFIX = "greedy_evaluation"
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint", "grid")
SCHEDULERS = ("fifo", "asha")


def _distribution(key: str, spec: Any):
    from ray import tune

    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ValueError(f"search_space[{key!r}] must be one of {{{', '.join(d + ': ...' for d in DISTRIBUTIONS)}}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ValueError(f"search_space[{key!r}].{kind} must be a non-empty list, got {args!r}")
        return tune.choice(args) if kind == "choice" else tune.grid_search(args)
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args) and args[0] < args[1]):
        raise ValueError(f"search_space[{key!r}].{kind} must be [low, high] with low < high, got {args!r}")
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
            from rllib_quantum.envs import register_envs

            register_envs()
            exp = build_experiment(base, {**overrides, **sampled})
            algo = exp.algo_config.build_algo()
            try:
                for iteration in range(1, max_iterations + 1):
                    result = algo.train()
                    result.pop("config", None)
                    _ensure_metric(result, metric)
                    if episodes and iteration == max_iterations:
                        result[GREEDY_EVAL_PREFIX] = greedy_evaluation(exp, algo, episodes)
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


def greedy_evaluation(exp, algo, episodes: int) -> Dict[str, float]:
    """Greedy evaluation of the learner's current modules on fresh env seeds (see
    :mod:`rllib_quantum.evaluation`): ``{"<agent>_mean": ..., "<agent>_ci95": ..., "episode_len_mean": ...}``."""
    from rllib_quantum.evaluation import evaluate_modules, learner_modules

    report = evaluate_modules(exp, learner_modules(exp, algo), episodes=episodes, greedy=True)
    out = {"episode_len_mean": sum(report.lengths) / len(report.lengths)}
    for agent in report.returns:
        out[f"{agent}_mean"], out[f"{agent}_ci95"] = report.mean(agent), report.ci95(agent)
    return out


def load_search(path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> Search:
    """Reads and validates a search file (see the module docstring); starts nothing.

    Args:
        path: the search YAML; its ``base`` path is relative to the current folder or to the file.
        overrides: dotted keys fixed for every trial, on top of the file's ``overrides``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search file {str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - set(SEARCH_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown search key(s) {unknown}; allowed: {list(SEARCH_KEYS)}")
    for key in ("base", "metric", "search_space"):
        if key not in raw:
            raise ValueError(f"{path}: missing search key {key!r}")
    base_path = Path(raw["base"])
    if not base_path.is_file():
        base_path = path.parent / raw["base"]
    if not base_path.is_file():
        raise FileNotFoundError(f"{path}: base experiment {raw['base']!r} does not exist")
    base = yaml.safe_load(base_path.read_text())
    fixed = {**(raw.get("overrides") or {}), **(overrides or {})}
    space = raw["search_space"]
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{path}: search_space must be a non-empty mapping of dotted keys")
    if raw.get("mode", "max") not in ("max", "min"):
        raise ValueError(f"{path}: mode must be 'max' or 'min', got {raw['mode']!r}")
    scheduler = dict(raw.get("scheduler") or {"type": "fifo"})
    if scheduler.get("type", "fifo") not in SCHEDULERS:
        raise ValueError(f"{path}: scheduler.type must be one of {list(SCHEDULERS)}, got {scheduler.get('type')!r}")
    counts = {"num_samples": raw.get("num_samples", 4), "max_iterations": raw.get("max_iterations", 10)}
    episodes = raw.get("evaluation_episodes", 0)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ValueError(f"{path}: evaluation_episodes must be an int >= 0, got {episodes!r}")
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {key} must be an int >= 1, got {value!r}")
    # Validate every searched key at the ends of its range before any trial starts.
    build_experiment(base, fixed)
    for key, spec in space.items():
        _distribution(key, spec)
        for value in _candidates(spec):
            try:
                build_experiment(base, {**fixed, key: value})
            except (ValueError, TypeError) as err:
                raise type(err)(f"{path}: search_space[{key!r}] value {value!r}: {err}") from None
    return Search(
        name=raw.get("name", f"search-{path.stem}"),
        base=base,
        overrides=fixed,
        search_space=copy.deepcopy(dict(space)),
        metric=raw["metric"],
        mode=raw.get("mode", "max"),
        num_samples=counts["num_samples"],
        max_iterations=counts["max_iterations"],
        scheduler=scheduler,
        evaluation_episodes=episodes,
    )


__all__ = ["Search", "load_search"]
