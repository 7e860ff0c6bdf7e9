"""rllib_quantum.gc_freeze: experiments freeze every training process's long-lived objects out of
Python's garbage-collector scans, and a later freeze frees what earlier ones kept."""

import gc
import weakref
from pathlib import Path

from rllib_quantum import gc_freeze
from rllib_quantum.config import load_experiment

from _tiny import tiny

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quantum_independent_pong_features.yaml"


def test_install_adds_both_callbacks_once_and_keeps_the_users():
    from ray.rllib.algorithms.ppo import PPOConfig

    def mine(**kwargs):
        pass

    config = PPOConfig().callbacks(on_algorithm_init=mine)
    gc_freeze.install(gc_freeze.install(config))
    assert config.callbacks_on_algorithm_init == [mine, gc_freeze.freeze_after_algorithm_init]
    assert config.callbacks_on_environment_created == [gc_freeze.freeze_after_env_created]


def test_a_later_freeze_frees_the_cyclic_garbage_an_earlier_one_kept():
    class Node:
        pass

    try:
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        assert gc_freeze.freeze() >= 1
        del node
        gc.collect()  # frozen: the collector does not look at it
        assert alive() is not None
        gc_freeze.freeze()  # unfreezes, collects, freezes again
        assert alive() is None
    finally:
        gc.unfreeze()


def test_experiments_freeze_the_algorithm_each_remote_runner_and_learner_unless_switched_off(build_algo):
    off = load_experiment(CONFIG, tiny("quantum", gc_freeze=False))
    assert gc_freeze.freeze_after_algorithm_init not in (off.algo_config.callbacks_on_algorithm_init or [])
    assert gc_freeze.freeze_after_env_created not in (off.algo_config.callbacks_on_environment_created or [])

    gc.unfreeze()
    try:
        exp = load_experiment(CONFIG, tiny("quantum", **{
            "env_runners.num_env_runners": 1, "env_runners.num_cpus_per_env_runner": 0.5,
            "learners.num_learners": 1, "learners.num_cpus_per_learner": 0.5}))
        assert gc.get_freeze_count() == 0
        algo = build_algo(exp.algo_config)
        assert gc.get_freeze_count() > 10000  # this process: the algorithm and its local env runner
        remote = algo.env_runner_group.foreach_env_runner(lambda runner: gc.get_freeze_count(), local_env_runner=False)
        assert len(remote) == 1 and remote[0] > 10000
        learners = [r.get() for r in algo.learner_group.foreach_learner(lambda learner: gc.get_freeze_count())]
        assert len(learners) == 1 and learners[0] > 10000
        assert algo.train()["training_iteration"] == 1
    finally:
        gc.unfreeze()
