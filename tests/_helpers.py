"""Helpers several test files share: scripts run as a user runs them, env_config errors checked
at every entry point."""

import importlib
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rllib_quantum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def import_benchmarks(*names: str) -> list:
    """The ``benchmarks/`` scripts ``names`` as modules (they import each other as top-level
    modules, so their folder is on ``sys.path`` while they load, and only then)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def run_script(path: str, args, home: Path, timeout: int) -> str:
    """Runs ``python <path> <args>`` from the repo root as a subprocess (it starts its own Ray, so it
    cannot clash with the session instance) with HOME, TMPDIR and RAY_TMPDIR in ``home``; asserts
    it exited 0 and wrote nothing under ``home``'s ``ray_results``; returns stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    env.update(
        HOME=str(home), TMPDIR=str(home), RAY_TMPDIR=str(home), RAY_AUTH_MODE="disabled",
        PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
    )
    proc = subprocess.run(
        [sys.executable, path, *args], cwd=ROOT, env=env, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.returncode == 0, f"{path} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
    assert not (home / "ray_results").exists(), f"{path} wrote {list((home / 'ray_results').rglob('*'))}"
    return proc.stdout


def assert_env_config_refused(validator, maker, creator, env_config, key: str, match: str) -> None:
    """``env_config`` is refused with ``<key>: <match>`` by the env's validator and maker (keys
    inside env_config), and by its registered creator (what RLlib calls) with ``env_config.`` in
    front; the error pickles (creators run on Ray workers)."""
    pattern = "^" + (re.escape(key) + ": " if key else "") + match
    for check in (validator, maker):
        with pytest.raises(ConfigError, match=pattern) as info:
            check(env_config)
        assert info.value.key == key
    full = f"env_config.{key}" if key else "env_config"
    with pytest.raises(ConfigError, match="^" + re.escape(full) + ": " + match) as info:
        creator(env_config)
    assert info.value.key == full
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.key, str(clone)) == (full, str(info.value))
