"""Hyperparameter search files: validated up front, and a real 2-trial search runs through Tune."""

from pathlib import Path

import pytest
import yaml

from rllib_quantum import cli
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
    "change, match",
    [
        ({"search_space": {"model_config.circuit.n_qubits": {"choice": [0, 5]}}}, r"value 0: .*'circuit.n_qubits' must be >= 1"),
        ({"search_space": {"ppo.lr": {"normal": [0, 1]}}}, r"search_space\['ppo.lr'\] must be one of"),
        ({"search_space": {"ppo.lr": {"loguniform": [0.1, 0.01]}}}, r"must be \[low, high\] with low < high"),
        ({"search_space": {"ppo.learning_rate": {"choice": [0.1]}}}, r"unknown key\(s\) \['ppo.learning_rate'\]"),
        ({"scheduler": {"type": "pbt"}}, r"scheduler.type must be one of \['fifo', 'asha'\]"),
        ({"trials": 3}, r"unknown search key\(s\) \['trials'\]"),
    ],
)
def test_bad_search_files_are_named(tmp_path, change, match):
    raw = {**yaml.safe_load((ROOT / "tuning" / "quantum_pong_features.yaml").read_text()), **change}
    raw["base"] = str(ROOT / "configs" / "quantum_independent_pong_features.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises((ValueError, TypeError), match=match):
        load_search(path)


def test_missing_metric_is_reported_as_nan_until_an_episode_ends():
    from rllib_quantum.search import _ensure_metric

    result = {"env_runners": {"num_env_steps_sampled": 200}}
    _ensure_metric(result, "env_runners/episode_return_mean")
    assert result["env_runners"]["num_env_steps_sampled"] == 200
    assert result["env_runners"]["episode_return_mean"] != result["env_runners"]["episode_return_mean"]  # NaN
    result = {"env_runners": {"episode_return_mean": 5.0}}
    _ensure_metric(result, "env_runners/episode_return_mean")
    assert result["env_runners"]["episode_return_mean"] == 5.0
