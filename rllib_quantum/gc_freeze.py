"""Python's garbage collector kept off the objects that live for the whole run (``gc.freeze``).

A training process holds several hundred thousand container objects from the moment it is built
(torch, Ray, RLlib, PennyLane, the env, the modules) until it ends. CPython's cyclic collector
scans all of them at every full collection, and the many small objects RLlib allocates per agent
step (episodes, lookback buffers, batch dicts) trigger such collections more often as agents are
added: on MPE simple spread with 16 agents the pauses measured about 0.05-0.1 s per iteration, at
2 agents about 0.001 s (``python benchmarks/agent_scaling.py``, the ``gc`` line).

:func:`install` adds two callbacks to an ``AlgorithmConfig`` that, once a process has built what it
keeps, collect once and move every object then alive to the collector's permanent generation
(``gc.freeze()``), so that later collections scan only the objects made since:

* ``on_algorithm_init``: the algorithm's process (its local env runner and local learner) and, via
  ``foreach_learner``, remote learners;
* ``on_environment_created``: each remote env runner (``worker_index > 0``) after its env is made.

Each freeze first unfreezes and collects (``gc.unfreeze(); gc.collect(); gc.freeze()``), so a
process that builds several algorithms one after another (a test session, a benchmark) frees the
cyclic garbage of the earlier ones instead of keeping it frozen. Objects still alive at a freeze
that later become cyclic garbage are freed only at the next freeze or ``gc.unfreeze()``; objects
freed by reference counting are unaffected. Every freeze costs one full collection of the
process's objects, once per build.

YAML experiments install it unless ``gc_freeze: false``; for an RLlib config of your own:

Example:
    >>> from ray.rllib.algorithms.ppo import PPOConfig
    >>> from rllib_quantum.gc_freeze import freeze_after_algorithm_init, install
    >>> config = install(PPOConfig())
    >>> freeze_after_algorithm_init in config.callbacks_on_algorithm_init
    True
"""

from __future__ import annotations

import gc


def freeze() -> int:
    """Frees the cyclic garbage (also of objects frozen earlier), then freezes every object still
    alive; returns how many objects the collector ignores from now on."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def freeze_after_algorithm_init(*, algorithm=None, **kwargs) -> None:
    """An ``on_algorithm_init`` callback: freezes this process and every remote learner."""
    freeze()
    group = getattr(algorithm, "learner_group", None)
    if group is not None and not group.is_local:
        group.foreach_learner(lambda learner: freeze())


def freeze_after_env_created(*, env_runner=None, **kwargs) -> None:
    """An ``on_environment_created`` callback: freezes a remote env runner's process (the local
    runner's process is the algorithm's, frozen once the algorithm is built)."""
    if (getattr(env_runner, "worker_index", 0) or 0) > 0:
        freeze()


def install(config):
    """Adds :func:`freeze_after_algorithm_init` and :func:`freeze_after_env_created` to ``config``'s
    callbacks (the others are kept); returns ``config``."""
    from rllib_quantum.safety import add_callback

    add_callback(config, "on_algorithm_init", freeze_after_algorithm_init)
    add_callback(config, "on_environment_created", freeze_after_env_created)
    return config
