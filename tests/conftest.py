"""Shared fixtures: ONE Ray instance for the whole session (2 CPUs, no dashboard), temp dirs only."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Keep Ray and Tune out of the home folder: no auth token file, no ~/ray_results.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A session-wide local Ray instance; tests that need Ray take this fixture."""
    import ray

    from rllib_quantum.envs import register_envs
    from rllib_quantum.reproducibility import reproducible_runtime_env

    temp_dir = tempfile.mkdtemp(prefix="rq-ray-")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False,
                 runtime_env=reproducible_runtime_env())
    register_envs()
    yield ray
    ray.shutdown()


@pytest.fixture
def build_algo(ray_session, tmp_path, monkeypatch):
    """``build_algo(algo_config)`` -> Algorithm whose log folder is under ``tmp_path``; stopped after.

    An Algorithm built outside Tune makes its folder under ray.train's DEFAULT_STORAGE_PATH
    (``~/ray_results``, fixed at import time); point it at the test's temp dir instead.
    """
    import ray.tune.trainable.trainable as trainable

    monkeypatch.setattr(trainable, "DEFAULT_STORAGE_PATH", str(tmp_path))
    algos = []

    def _build(config):
        algo = config.build_algo()
        algos.append(algo)
        return algo

    yield _build
    for algo in algos:
        algo.stop()


@pytest.fixture
def storage(tmp_path):
    """A Tune storage folder inside the test's temp dir."""
    path = tmp_path / "results"
    path.mkdir()
    return str(path)


@pytest.fixture
def sandbox():
    """A short temp folder (Ray's socket paths must stay under ~100 characters), used as HOME by
    scripts run as subprocesses (``_helpers.run_script``)."""
    path = Path(tempfile.mkdtemp(prefix="rqx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
