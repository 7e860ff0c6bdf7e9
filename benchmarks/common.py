"""What every benchmark script shares: flags from its ``Args`` dataclass, timing, a quiet Ray.

Scripts run as ``python benchmarks/NAME.py``, so this module is importable as ``common``.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Callable, Type, TypeVar

T = TypeVar("T")


def parse_args(args_cls: Type[T], description: str) -> T:
    """``--field value`` for every field of the ``args_cls`` dataclass: the examples' helper
    (:func:`rllib_quantum.script_args.parse_args`: tuples take several values, bools are
    ``--flag``/``--no-flag``); defaults come from the dataclass."""
    from rllib_quantum.script_args import parse_args as from_dataclass

    return from_dataclass(args_cls, description=description)


def setup_torch(threads: int, seed: int) -> str:
    """Sets torch's intra-op threads and seed; returns a one-line description of the machine."""
    import platform

    import pennylane as qml
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return (
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__}, pennylane {qml.__version__}"
    )


def median_seconds(fn: Callable[[], object], min_seconds: float, min_repeats: int = 3) -> float:
    """Median wall time of ``fn()`` after one warm-up call, over at least ``min_repeats`` calls
    and at least ``min_seconds``."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_ray():
    """A local Ray on all CPUs, no dashboard, our envs registered; Algorithms built outside Tune
    log into a temp folder instead of ``~/ray_results``."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import ray.tune.trainable.trainable as trainable

    from rllib_quantum.envs import register_envs
    from rllib_quantum.reproducibility import reproducible_runtime_env

    trainable.DEFAULT_STORAGE_PATH = tempfile.mkdtemp(prefix="rq-bench-")
    # one PYTHONHASHSEED for every worker (Tune trials, remote env runners): seeded runs there repeat
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env=reproducible_runtime_env())
    register_envs()
    return ray


class Stopwatch:
    """Seconds spent inside wrapped methods, summed by name until ``reset()``."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def wrap(self, obj, method: str, name: str) -> None:
        """Replaces ``obj.method`` (an instance attribute shadowing the class's) by a timed call."""
        inner = getattr(obj, method)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        setattr(obj, method, timed)

    def reset(self) -> tuple:
        """``({name: seconds}, {name: calls})`` since the last reset."""
        out = dict(self.seconds), dict(self.calls)
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        return out
