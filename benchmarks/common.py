"""What every benchmark script shares: flags from its ``Args`` dataclass, timing, a quiet Ray.

Scripts run as ``python benchmarks/NAME.py``, so this module is importable as ``common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from typing import Callable, Type, TypeVar

T = TypeVar("T")


def parse_args(args_cls: Type[T], description: str) -> T:
    """``--field value`` for every field of the ``args_cls`` dataclass (tuples take several values,
    bools are ``--flag`` switches); defaults come from the dataclass."""
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(args_cls):
        default = getattr(args_cls, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", default=default, dest=field.name)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", type=type(default[0]), default=default, dest=field.name)
        else:
            parser.add_argument(flag, type=type(default), default=default, dest=field.name)
    parsed = vars(parser.parse_args())
    return args_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in parsed.items()})


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
