"""The ``rllib-quantum`` command: a real 2-iteration PPO run, ``describe``, and bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rllib_quantum import cli

ROOT = Path(__file__).resolve().parents[1]
FEATURES = str(ROOT / "configs" / "quantum_independent_pong_features.yaml")
TINY = [  # small batches: the run checks plumbing, not learning
    "--set", "env_config.max_cycles=100",
    "--set", "ppo.train_batch_size_per_learner=200",
    "--set", "ppo.minibatch_size=100",
    "--set", "ppo.num_epochs=2",
    "--set", "env_runners.num_envs_per_env_runner=1",  # episodes must end within 2 tiny iterations
]


@pytest.mark.parametrize("api", ["tuner", "run"])
def test_train_runs_independent_quantum_policies_through_tune(ray_session, storage, capsys, api):
    iters = 2 if api == "tuner" else 1
    summary = cli.train(
        cli._load(cli._parser().parse_args(["train", FEATURES, "--stop-iters", str(iters), *TINY])),
        storage=storage, address=None, num_cpus=None, api=api, eval_episodes=3,
    )
    out = capsys.readouterr().out
    assert summary["iterations"] == iters
    # The shipped runner layout (2 remote runners at 0.5 CPU each) fits the 2-CPU test Ray.
    assert 200 * iters <= summary["env_steps"] < 200 * iters + 2 * iters
    assert sorted(summary["mean_return_per_agent"]) == ["paddle_0", "paddle_1"]
    assert re.search(r"\[\w+ iter    1\] env steps +2[01]\d \| mean return paddle_0=", out)
    assert "trained nothing" not in out
    assert re.search(rf"SUMMARY quantum-independent-pong-features: {iters} iterations, {summary['env_steps']} env steps", out)
    # The final policies played fresh greedy episodes (max_cycles=100: no reference levels known).
    assert re.search(r"EVALUATION quantum-independent-pong-features: greedy actions, 3 episodes \(env seeds 1000000\.\.1000002\)", out)
    assert sorted(summary["evaluation"]) == ["paddle_0", "paddle_1"]
    assert -10.0 <= summary["evaluation"]["paddle_0"]["mean"] <= 100.0
    assert "greedy evaluation: paddle_0" in out and "reference:" not in out

    trial = Path(summary["logs"])
    assert Path(summary["learning_curve"]).stat().st_size > 10_000  # a real PNG, not an empty file
    assert list(trial.glob("events.out.tfevents.*")), "no TensorBoard log"
    progress = pd.read_csv(trial / "progress.csv")
    assert len(progress) == iters
    # Each iteration really trained both modules (a timed-out sample would train nothing).
    for agent in ("paddle_0", "paddle_1"):
        trained = progress[f"learners/{agent}/num_module_steps_trained"]
        assert (trained > 0).all(), trained


def test_describe_prints_diagrams_and_parameter_counts(capsys):
    assert cli.main(["describe", FEATURES, "--set", "model_config.circuit.n_layers=1"]) == 0
    out = capsys.readouterr().out
    assert "module 'paddle_0' (agents: paddle_0) QuantumPPORLModule" in out
    assert "module 'paddle_1' (agents: paddle_1) QuantumPPORLModule" in out
    # quantum: 1 layer x 5 wires x 3 angles + 5 input + 5 output scalings (all 5 wires read out);
    # classical: the linear read-out 5 x 3 + 3 and the 32x32 critic (5*32+32 + 32*32+32 + 32+1)
    assert "parameters: quantum 25, classical 1299, total 1324" in out
    assert out.count("0: ──RX──Rot─╭●") == 2  # one diagram per module, gates as documented


def _cli(*args, cwd=ROOT):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "rllib_quantum.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "model_config.circuit.n_qubits=0"], "model_config.circuit.n_qubits: must be an int in 1..24, got 0"),
        (["--set", "env_config.obs=rgb"], "env_config.obs: must be one of ['features', 'pixels'], got 'rgb'"),
        (["--stop-iters", "0"], "--stop-iters: must be >= 1, got 0"),
        (["--num-cpus", "0"], "--num-cpus: must be >= 1, got 0"),
        (["--eval-episodes", "-1"], "--eval-episodes: must be >= 0, got -1"),
        (["--num-cpus", "1"], "env_runners: one trial needs 2 CPUs (1 driver/learner + 2 env runners x 0.5 CPU), more than --num-cpus 1"),
        (["--num-cpus", "2", "--set", "evaluation={evaluation_num_env_runners: 2, evaluation_interval: 5}"],
         "env_runners: one trial needs 3 CPUs (1 driver/learner + 2 env runners x 0.5 CPU + 2 evaluation env runners x 0.5 CPU)"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_ray_starts(args, message):
    proc = _cli("train", FEATURES, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr + proc.stdout


def test_address_joins_an_existing_ray_cluster(ray_session, storage):
    """`--address` connects to a running cluster (here: the test session's) instead of starting one."""
    address = ray_session.get_runtime_context().gcs_address
    proc = _cli("train", FEATURES, "--stop-iters", "1", *TINY, "--address", address, "--storage", storage)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SUMMARY quantum-independent-pong-features: 1 iterations" in proc.stdout
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert f"Connecting to existing Ray cluster at address: {address}" in proc.stdout + proc.stderr


def test_summary_line_says_where_the_run_first_reached_half_the_ceiling():
    """The demo's question, "how far did it get, and how fast": the SUMMARY line names the env
    steps and training time at which the 5-iteration mean return of every agent first reached half
    the ceiling, found by ``plotting.first_passing`` on a real progress table's columns."""
    from rllib_quantum.plotting import AGENT_RETURN_PREFIX, STEPS, first_passing

    returns = [-3.0, 10.0, 40.0, 70.0, 80.0, 90.0, 95.0]
    df = pd.DataFrame({
        "training_iteration": range(1, 8), STEPS: [8000 * i for i in range(1, 8)], "time_total_s": [2.0 * i for i in range(1, 8)],
        AGENT_RETURN_PREFIX + "paddle_0": returns, AGENT_RETURN_PREFIX + "paddle_1": returns,
    })
    levels = {"random play": -3.7, "scripted tracker (ceiling)": 100.0}
    summary = {
        "iterations": 7, "env_steps": 56000, "train_time_s": 14.0, "wall_time_s": 20.0, "logs": "L", "learning_curve": "C",
        "last10_return_per_agent": {"paddle_0": 57.4, "paddle_1": 57.4}, "evaluation": None, "periodic_evaluation": None,
        "half_ceiling": {"threshold": 50.0, "reached": first_passing(df, 50.0, smooth=5)},
    }
    # 5-iteration means: -3, 3.5, 15.7, 29.3, 39.4, 58.0, ... -> first >= 50 at iteration 6
    assert summary["half_ceiling"]["reached"] == {"iteration": 6, "env_steps": 48000, "time_s": 12.0}
    line = cli.summary_line("demo", summary, levels)
    assert "5-iteration mean first >= 50 (half the ceiling) after 48000 env steps, 12 s of training" in line
    summary["half_ceiling"] = {"threshold": 50.0, "reached": first_passing(df.head(5), 50.0, smooth=5)}
    assert "5-iteration mean never >= 50 (half the ceiling)" in cli.summary_line("demo", summary, levels)
