"""``ParameterAveragingCallback``: average chosen parameters across modules every N iterations.

How the averaged values reach every copy of a module (Ray 2.60, new API stack):

* learners: each ``Learner`` (local, or every remote one) writes the values into its own
  ``MultiRLModule`` (``module.set_state`` with only the chosen keys; torch ``load_state_dict``
  copies in place, so the optimizer keeps pointing at the same tensors) and, with
  ``optimizer: reset``, drops the optimizer state of exactly those tensors.
* env runners (local and remote): each runner merges the values into its own inference-only
  module state and applies it with ``EnvRunner.set_state({"rl_module": ...})`` **without** a
  ``weights_seq_no``. RLlib skips a state whose sequence number the runner already holds (so
  ``env_runner_group.sync_weights(from_worker_or_learner_group=learner_group)`` after
  ``learner_group.set_weights`` silently leaves the runners on the old weights), but applies a
  state without one. The runner keeps its sequence number, so the next regular sync (newer
  number after the next update) still goes through.

Both calls are synchronous, so the next ``sample()`` already acts with the averaged values.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core import COMPONENT_RL_MODULE
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_MODULE_STEPS_SAMPLED

from rllib_quantum.callbacks.options import DEFAULT_AVERAGING_OPTIONS, validate_averaging_options
from rllib_quantum.callbacks.selection import (
    check_module_ids,
    describe_multi_module,
    divergence,
    round_weights,
    select_params,
    weighted_mean,
)

RESULT_KEY = "parameter_averaging"


# ---- functions shipped to learners and env runners (module level: pickled by reference) --------
def _learner_catalog(learner) -> Dict[str, Any]:
    return describe_multi_module(learner.module)


def _write_learner(learner, new_states: Dict[str, Dict[str, Any]], reset_optimizer: bool) -> int:
    """Writes ``{module_id: {key: array}}`` into the learner's modules; optionally resets Adam state."""
    learner.module.set_state(new_states)
    dropped = 0
    if reset_optimizer:
        for mid, state in new_states.items():
            params = dict(learner.module[mid].unwrapped().named_parameters())
            for _, optimizer in learner.get_optimizers_for_module(mid):
                for key in state:
                    if key in params and optimizer.state.pop(params[key], None) is not None:
                        dropped += 1
    return dropped


def _write_env_runner(runner, new_states: Dict[str, Dict[str, Any]]) -> Dict[str, List[str]]:
    """Merges the chosen keys into the runner's module state; forced ``set_state`` (no seq no)."""
    module = getattr(runner, "module", None)
    if module is None:  # a local env runner without modules (remote runners do the sampling)
        return {}
    merged, written = {}, {}
    for mid, state in new_states.items():
        if mid not in module:
            continue
        current = module[mid].get_state()
        written[mid] = [k for k in state if k in current]  # inference-only copies lack the critic
        merged[mid] = {**current, **{k: state[k] for k in written[mid]}}
    runner.set_state({COMPONENT_RL_MODULE: merged})
    return written


def _raise_errors(results, where: str) -> list:
    out = []
    for r in results:
        if not r.ok:
            raise RuntimeError(f"parameter averaging failed on a {where}: {r.get()!r}")
        out.append(r.get())
    return out


class ParameterAveragingCallback(RLlibCallback):
    """Averages the chosen parameters of a group of modules every ``every`` iterations.

    Configure it through :func:`averaging_callback` (options become class attributes); the
    class attributes below are the defaults. Checks module ids, parameter choice and shapes in
    ``on_algorithm_init`` (before the first sample); each ``on_train_result`` logs
    ``result["parameter_averaging"] = {"divergence", "rounds", "averaged"}``: ``divergence`` is
    the mean L2 distance of the modules' chosen parameters to their (weighted) mean, measured on
    the learner at the end of the iteration before any averaging; ``rounds`` counts rounds so
    far; ``averaged`` is 1.0 when this iteration ended with a round.

    Options (``modules``, ``params``, ``weights``, ``optimizer``, ``every``; see
    :func:`averaging_callback`) are keyword arguments, validated when the callback is built, so
    ``functools.partial`` binds them the way RLlib users configure callbacks, alone or in a list
    with other callbacks. :func:`averaging_callback` binds them as class attributes instead, and
    validates them at once, on the driver.

    Example:
        >>> import functools
        >>> from ray.rllib.algorithms.ppo import PPOConfig
        >>> config = PPOConfig().callbacks(averaging_callback(every=2, params="quantum"))
        >>> config = PPOConfig().callbacks([functools.partial(ParameterAveragingCallback, every=5)])
        >>> ParameterAveragingCallback(every=5, params="all").options["every"]
        5
        >>> ParameterAveragingCallback(evry=5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: unknown key(s) ['evry']; allowed: [...]
    """

    modules: Optional[List[str]] = DEFAULT_AVERAGING_OPTIONS["modules"]
    params: Any = DEFAULT_AVERAGING_OPTIONS["params"]
    weights: str = DEFAULT_AVERAGING_OPTIONS["weights"]
    optimizer: str = DEFAULT_AVERAGING_OPTIONS["optimizer"]
    every: int = DEFAULT_AVERAGING_OPTIONS["every"]

    def __init__(self, **options: Any) -> None:
        """Options as keyword arguments (see :func:`averaging_callback`); unset ones take the class
        attributes. RLlib builds callbacks with no arguments, so bind options with
        ``functools.partial(ParameterAveragingCallback, every=5)`` or :func:`averaging_callback`."""
        super().__init__()
        self.options = validate_averaging_options({**{k: getattr(self, k) for k in DEFAULT_AVERAGING_OPTIONS}, **options})
        self.module_ids: Optional[List[str]] = None
        self.param_keys: Optional[List[str]] = None
        self.rounds = 0

    @classmethod
    def check_modules(cls, module_ids: List[str], multi_module=None) -> None:
        """Driver-side checks before Ray starts: ids against ``module_ids``; with a locally built
        ``MultiRLModule`` also the parameter choice and shapes. Raises
        :class:`~rllib_quantum.errors.ConfigError` keyed ``modules`` or ``params`` (the options)."""
        mids = check_module_ids(cls.modules, module_ids)
        if multi_module is not None:
            select_params(cls.params, mids, describe_multi_module(multi_module))

    def resolve(self, algorithm) -> None:
        """Reads the learner's modules and fixes ``module_ids`` and ``param_keys`` (or raises)."""
        catalog = _raise_errors(algorithm.learner_group.foreach_learner(_learner_catalog), "learner")[0]
        known = list(catalog)
        to_train = algorithm.config.policies_to_train
        if self.options["modules"] is None and isinstance(to_train, (list, tuple, set, frozenset)):
            known = [m for m in known if m in to_train]  # default: the trained modules only
        self.module_ids = check_module_ids(self.options["modules"], known)
        self.param_keys = select_params(self.options["params"], self.module_ids, catalog)

    @override(RLlibCallback)
    def on_algorithm_init(self, *, algorithm, metrics_logger=None, **kwargs) -> None:
        self.resolve(algorithm)

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, metrics_logger=None, result: dict, **kwargs) -> None:
        if self.module_ids is None:
            self.resolve(algorithm)
        full = algorithm.learner_group.get_weights(module_ids=self.module_ids)
        states = {mid: {k: full[mid][k] for k in self.param_keys} for mid in self.module_ids}
        steps = (result.get(ENV_RUNNER_RESULTS) or {}).get(NUM_MODULE_STEPS_SAMPLED)
        mean = weighted_mean(states, round_weights(self.options["weights"], self.module_ids, steps))
        info = {"divergence": divergence(states, mean), "averaged": 0.0}
        iteration = int(result.get("training_iteration", algorithm.iteration))
        if iteration % self.options["every"] == 0:
            self.average(algorithm, mean)
            info["averaged"] = 1.0
        # Rounds so far follow from the iteration count, so they continue after a restore (the
        # schedule itself is the iteration count, which RLlib checkpoints).
        self.rounds = iteration // self.options["every"]
        info["rounds"] = self.rounds
        result[RESULT_KEY] = info

    def average(self, algorithm, mean: Dict[str, Any]) -> None:
        """Writes ``mean`` into every module of the group on all learners and env runners."""
        new_states = {mid: dict(mean) for mid in self.module_ids}
        reset = self.options["optimizer"] == "reset"
        _raise_errors(algorithm.learner_group.foreach_learner(_write_learner, new_states=new_states, reset_optimizer=reset), "learner")
        algorithm.env_runner_group.foreach_env_runner(functools.partial(_write_env_runner, new_states=new_states), local_env_runner=True)
        self.rounds += 1


def averaging_callback(**options) -> type:
    """A :class:`ParameterAveragingCallback` subclass with ``options`` bound (validated now).

    Args:
        modules: module ids to average (default ``None``: all trained modules; at least 2).
        params: ``"quantum"`` (default), ``"all"``, or a list of fnmatch patterns over state-dict keys.
        weights: ``"uniform"`` (default) or ``"agent_steps"``.
        optimizer: ``"keep"`` (default) or ``"reset"`` (drop Adam state of the averaged params).
        every: average every N training iterations (default 1).

    Returns:
        A class for ``AlgorithmConfig.callbacks(...)`` (picklable by cloudpickle, as Tune needs).

    Raises:
        ConfigError: a bad option, keyed by its name (``""`` for unknown ones); the experiment
            loader reports it under ``averaging.``.

    Example:
        >>> cb = averaging_callback(every=5, params=["actor.*"], optimizer="reset")
        >>> cb.every, cb.params
        (5, ['actor.*'])
    """
    opts = validate_averaging_options(options)
    return type(
        "ParameterAveragingCallback",
        (ParameterAveragingCallback,),
        {**opts, "__doc__": f"ParameterAveragingCallback with options {opts}.", "__qualname__": "averaging_callback.<locals>.ParameterAveragingCallback"},
    )
