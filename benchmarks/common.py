"""What every benchmark script shares: flags from its ``Args`` dataclass, timing, a quiet Ray.

Scripts run as ``python benchmarks/NAME.py``, so this module is importable as ``common``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
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

    trainable.DEFAULT_STORAGE_PATH = tempfile.mkdtemp(prefix="rq-bench-")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    register_envs()
    return ray
