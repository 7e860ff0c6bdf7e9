"""Hyperparameter search files: validated up front, and a real 2-trial search runs through Tune."""

import pickle
import re
from pathlib import Path

import pytest
import yaml

from rllib_quantum import cli
from rllib_quantum.errors import ConfigError
from rllib_quantum.search import load_search

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = sorted((ROOT / "tuning").glob("*.yaml"))


@pytest.mark.parametrize("path", SEARCHES, ids=[p.stem for p in SEARCHES])
def test_shipped_search_files_validate(path):
    search = load_search(path)
    assert search.search_space and search.metric.startswith("env_runners/")


def test_search_runs_trials_with_sampled_circuit_keys(ray_session, storage, tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(ROOT / "configs" / "quantum_independent_pong_features.yaml"),
        "metric": "env_runners/episode_return_mean",
        "num_samples": 1,
        "max_iterations": 2,
        "overrides": {"ppo.train_batch_size_per_learner": 200, "ppo.minibatch_size": 100, "ppo.num_epochs": 1,
                      "env_config.max_cycles": 100, "env_runners.num_envs_per_env_runner": 1},
        "search_space": {"model_config.circuit.n_layers": {"grid": [1, 2]}},
    }))
    summary = cli.tune_search(load_search(path), storage, num_samples=None)
    assert summary["trials"] == 2
    assert summary["best_config"]["model_config.circuit.n_layers"] in (1, 2)
    progress = sorted(Path(summary["logs"]).glob("*/progress.csv"))
    assert len(progress) == 2 and all(len(p.read_text().splitlines()) == 3 for p in progress)  # header + 2 iterations


@pytest.mark.parametrize(
    "change, key, match",
    [
        ({"search_space": {"model_config.circuit.n_qubits": {"choice": [0, 5]}}}, "search_space.model_config.circuit.n_qubits",
         r"value 0: must be an int in 1\.\.24, got 0"),
        ({"search_space": {"model_config.circuit.n_qubits": {"choice": [4, 10000]}}}, "search_space.model_config.circuit.n_qubits",
         r"value 10000: must be an int in 1\.\.24, got 10000 \(a statevector of 10000 qubits needs .*2\*\*10003 bytes"),
        ({"search_space": {"ppo.lr": {"normal": [0, 1]}}}, "search_space.ppo.lr", r"must be one of \{choice: \.\.\., "),
        ({"search_space": {"ppo.lr": {"loguniform": [0.1, 0.01]}}}, "search_space.ppo.lr.loguniform", r"must be \[low, high\] with low < high"),
        ({"search_space": {"ppo.lr": {"choice": []}}}, "search_space.ppo.lr.choice", r"must be a non-empty list"),
        ({"search_space": {"ppo.learning_rate": {"choice": [0.1]}}}, "search_space.ppo.learning_rate", r"value 0\.1: .*unknown key\(s\)"),
        ({"search_space": []}, "search_space", r"must be a non-empty mapping of dotted keys"),
        ({"scheduler": {"type": "pbt"}}, "scheduler.type", r"must be one of \['fifo', 'asha'\], got 'pbt'"),
        ({"scheduler": {"type": "asha", "grace": 5}}, "scheduler", r"unknown key\(s\) \['grace'\]; allowed \(type: asha\)"),
        ({"scheduler": {"type": "asha", "grace_period": 0}}, "scheduler.grace_period", r"must be an int >= 1, got 0"),
        ({"scheduler": {"type": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor", r"must be a number > 1"),
        ({"scheduler": "asha"}, "scheduler", r"must be a mapping"),
        ({"mode": "maximize"}, "mode", r"must be one of \['max', 'min'\], got 'maximize'"),
        ({"metric": 3}, "metric", r"must be a '/'-path into RLlib's result"),
        ({"num_samples": 0}, "num_samples", r"must be an int >= 1, got 0"),
        ({"max_iterations": "10"}, "max_iterations", r"must be an int >= 1, got '10' \(str\)"),
        ({"evaluation_episodes": -1}, "evaluation_episodes", r"must be an int >= 0"),
        ({"overrides": ["ppo.lr=1"]}, "overrides", r"must be a mapping of dotted keys"),
        ({"trials": 3}, "", r"unknown key\(s\) \['trials'\]; allowed: \['base'"),
    ],
)
def test_bad_search_files_are_named(tmp_path, change, key, match):
    raw = {**yaml.safe_load((ROOT / "tuning" / "quantum_pong_features.yaml").read_text()), **change}
    raw["base"] = str(ROOT / "configs" / "quantum_independent_pong_features.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: " + (f"{key}: " if key else "")) + match) as info:
        load_search(path)
    err = info.value
    assert (err.key, err.source) == (key, str(path))
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.key, clone.source, str(clone)) == (err.key, err.source, str(err))


def test_missing_search_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": str(ROOT / "configs" / "quantum_independent_pong_features.yaml"), "metric": "x"}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: search_space: is required") as info:
        load_search(path)
    assert info.value.key == "search_space"


def test_missing_metric_is_reported_as_nan_until_an_episode_ends():
    from rllib_quantum.search import _ensure_metric

    result = {"env_runners": {"num_env_steps_sampled": 200}}
    _ensure_metric(result, "env_runners/episode_return_mean")
    assert result["env_runners"]["num_env_steps_sampled"] == 200
    assert result["env_runners"]["episode_return_mean"] != result["env_runners"]["episode_return_mean"]  # NaN
    result = {"env_runners": {"episode_return_mean": 5.0}}
    _ensure_metric(result, "env_runners/episode_return_mean")
    assert result["env_runners"]["episode_return_mean"] == 5.0
