"""Runs that go wrong or go on: evaluate a checkpoint (with a video), resume an interrupted run,
a worker's own error instead of RLlib's, and an env runner killed mid-training."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rllib_quantum import cli, load_experiment

ROOT = Path(__file__).resolve().parents[1]
AVERAGED = str(ROOT / "configs" / "quantum_averaged_pong_features.yaml")
FEATURES = str(ROOT / "configs" / "quantum_independent_pong_features.yaml")
TINY = [
    "--set", "env_config.max_cycles=100",
    "--set", "ppo.train_batch_size_per_learner=200",
    "--set", "ppo.minibatch_size=100",
    "--set", "ppo.num_epochs=1",
    "--set", "env_runners.num_env_runners=0",
    "--set", "env_runners.num_envs_per_env_runner=1",
    "--set", "model_config.circuit.n_layers=1",
]


def _checkpoint(storage) -> Path:
    return sorted(Path(storage).glob("*/*/checkpoint_*"))[-1]


def test_evaluate_a_checkpoint_with_a_video(ray_session, storage, tmp_path, capsys):
    exp = cli._load(cli._parser().parse_args(["train", FEATURES, "--stop-iters", "1", *TINY]))
    cli.train(exp, storage=storage, address=None, num_cpus=None, api="tuner", eval_episodes=0)
    checkpoint = _checkpoint(storage)
    capsys.readouterr()
    video = tmp_path / "episodes.gif"
    args = ["evaluate", str(checkpoint), "--episodes", "2", "--greedy", "--video", str(video)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "greedy actions, 2 episodes (env seeds 1000000..1000001)" in out
    assert "paddle_0" in out and "paddle_1" in out and f"VIDEO {video}:" in out
    from PIL import Image

    with Image.open(video) as gif:
        assert gif.size == (480, 280) and gif.n_frames >= 2
    # The same greedy episodes, evaluated again: same numbers (fresh, fixed seeds).
    again = cli.evaluate(str(checkpoint), episodes=2, greedy=True)
    first = [line for line in out.splitlines() if line.startswith("EVALUATION")][0]
    assert f"{again['paddle_0']['mean']:.1f}" in first
    # Bad arguments: one line, exit 2.
    assert cli.main(["evaluate", str(tmp_path), "--episodes", "2"]) == 2
    assert "CHECKPOINT: " in capsys.readouterr().err
    assert cli.main(["evaluate", str(checkpoint), "--video", str(tmp_path / "x.avi")]) == 2
    assert "--video: must end in one of ['.gif', '.mp4']" in capsys.readouterr().err


def test_periodic_evaluation_from_the_yaml_reaches_the_results_the_curve_and_the_summary(ray_session, storage, capsys):
    """An `evaluation` section (RLlib's AlgorithmConfig.evaluation()): greedy evaluation episodes
    every 2nd iteration on the evaluation env runner. Its metrics first appear in iteration 2, so
    Tune's progress.csv (columns fixed by iteration 1) lacks them; the CLI reads result.json."""
    from rllib_quantum.plotting import evaluation_rows, read_progress

    evaluation = "evaluation={evaluation_interval: 2, evaluation_duration: 2, evaluation_config: {explore: false}}"
    exp = cli._load(cli._parser().parse_args(["train", FEATURES, "--stop-iters", "4", *TINY, "--set", evaluation]))
    assert exp.algo_config.evaluation_interval == 2 and exp.algo_config.evaluation_config == {"explore": False}
    summary = cli.train(exp, storage=storage, address=None, num_cpus=None, api="tuner", eval_episodes=0)
    trial = next(Path(storage).glob("*/*/result.json")).parent
    assert not any(c.startswith("evaluation/") for c in pd.read_csv(trial / "progress.csv").columns)
    df = read_progress(trial)
    assert list(df["training_iteration"]) == [1, 2, 3, 4]
    assert list(df["training_iteration"][evaluation_rows(df)]) == [2, 4]  # not the repeat RLlib attaches to 3
    for agent in ("paddle_0", "paddle_1"):
        returns = df[f"evaluation/env_runners/agent_episode_returns_mean/{agent}"][evaluation_rows(df)]
        assert ((returns >= -10) & (returns <= 100)).all()
    assert summary["periodic_evaluation"]["iteration"] == 4 and summary["periodic_evaluation"]["episodes"] == 2
    assert "last periodic evaluation (iteration 4, 2 episodes): paddle_0 " in capsys.readouterr().out


def test_evaluate_writes_mp4(ray_session, storage, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg", reason="mp4 needs imageio-ffmpeg (in requirements-dev.txt)")
    exp = cli._load(cli._parser().parse_args(["train", FEATURES, "--stop-iters", "1", *TINY, "--set", "env_config.max_cycles=30"]))
    cli.train(exp, storage=storage, address=None, num_cpus=None, api="tuner", eval_episodes=0)
    video = tmp_path / "episode.mp4"
    assert cli.main(["evaluate", str(_checkpoint(storage)), "--episodes", "1", "--video", str(video)]) == 0
    assert video.stat().st_size > 1000 and video.read_bytes()[4:8] == b"ftyp"  # an MP4 container


def test_resume_continues_an_interrupted_run(ray_session, storage, tmp_path):
    """Interrupt a real CLI run (SIGINT, as Ctrl+C) after its second checkpoint, then resume it:
    the iteration count and the averaging schedule go on from the checkpoint."""
    args = [AVERAGED, *TINY, "--set", "stop.training_iteration=6", "--set", "checkpoint.frequency=1",
            "--set", "averaging.every=2", "--eval-episodes", "0", "--storage", storage, "--num-cpus", "1"]
    env = {**os.environ, "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rllib_quantum.cli", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(list(Path(storage).glob("*/*/checkpoint_*"))) < 2:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.5)
        assert len(list(Path(storage).glob("*/*/checkpoint_*"))) >= 2, "no checkpoints in time"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    experiment = next(Path(storage).iterdir())
    done = pd.read_csv(next(experiment.glob("*/progress.csv")))["training_iteration"].max()
    assert 2 <= done < 6, done

    exp = cli._load(cli._parser().parse_args(["train", *args[:-6], "--resume", str(experiment)]))
    summary = cli.train(exp, storage=storage, address=None, num_cpus=None, api="tuner", eval_episodes=0, resume=str(experiment))
    assert summary["iterations"] == 6
    # result.json has one line per iteration, across the interruption (progress.csv may change
    # columns when the resumed run reports new metrics).
    results = [json.loads(line) for line in next(experiment.glob("*/result.json")).read_text().splitlines()]
    iterations = [r["training_iteration"] for r in results]
    # Iterations after the restored checkpoint continue its count (no second run from 1).
    assert iterations[-1] == 6 and sorted(set(iterations)) == list(range(1, 7)), iterations
    assert results[-1]["parameter_averaging"]["rounds"] == 3  # every 2 iterations, 6 iterations
    assert results[-1]["parameter_averaging"]["averaged"] == 1.0
    # The policies' training went on from the checkpoint: the learner's step counts grow.
    trained = [r["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"] for r in results]
    assert trained[-1] > trained[iterations.index(done)]


def test_resume_refuses_a_folder_that_is_no_experiment(tmp_path, capsys):
    assert cli.main(["train", FEATURES, "--resume", str(tmp_path)]) == 2
    assert "--resume: " in capsys.readouterr().err


def _failure_of(creator, storage, iterations: int) -> str:
    """Trains the tiny features config on the env ``creator`` makes, with one remote env runner,
    through the CLI's ``train``; returns the message of the ``RunFailed`` it must raise."""
    from ray.tune.registry import register_env

    exp = cli._load(cli._parser().parse_args([
        "train", FEATURES, "--stop-iters", str(iterations), *TINY,
        "--set", "env_runners.num_env_runners=1", "--set", "env_runners.num_cpus_per_env_runner=0.5",
        "--set", "fault_tolerance.delay_between_env_runner_restarts_s=1",
    ]))
    name = f"rq_test_env_{creator.__qualname__.split('.')[0]}"
    register_env(name, creator)
    exp.algo_config.environment(name, env_config={})
    with pytest.raises(cli.RunFailed) as info:
        cli.train(exp, storage=storage, address=None, num_cpus=None, api="tuner", eval_episodes=0)
    return str(info.value)


def test_a_worker_error_reaches_the_user_in_one_line(ray_session, storage):
    """An env that cannot be built on the env runners: RLlib alone ends in an unrelated IndexError;
    the CLI names the runner's own error and the log."""
    from rllib_quantum.envs import make_cooperative_pong

    def creator(config):
        if config.worker_index > 0:  # only on the remote runner, as a missing package would
            raise ModuleNotFoundError("No module named 'a_package_only_the_driver_has'")
        return make_cooperative_pong({"max_cycles": 100})

    message = _failure_of(creator, storage, iterations=1)
    assert "an env runner could not start: ModuleNotFoundError: No module named 'a_package_only_the_driver_has'" in message
    assert "full log: " in message and len(message.splitlines()) == 1


def test_training_survives_a_killed_env_runner(build_algo):
    """Kill a remote env runner between iterations: RLlib (restart_failed_env_runners, set in the
    shipped configs) starts a new one and the run reaches its stop criterion."""
    import ray

    exp = load_experiment(FEATURES, {
        "env_config.max_cycles": 100, "ppo.train_batch_size_per_learner": 200, "ppo.minibatch_size": 100,
        "ppo.num_epochs": 1, "env_runners.num_envs_per_env_runner": 1, "model_config.circuit.n_layers": 1,
        "fault_tolerance.delay_between_env_runner_restarts_s": 0.0,
    })
    assert exp.spec["env_runners"]["num_env_runners"] == 2
    assert exp.spec["fault_tolerance"]["restart_failed_env_runners"] is True
    algo = build_algo(exp.algo_config)
    algo.train()
    manager = algo.env_runner_group._worker_manager
    victim = manager._actors[manager.actor_ids()[0]]
    ray.kill(victim, no_restart=False)  # a crash: Ray may restart the actor (max_restarts from the config)
    results = [algo.train() for _ in range(3)]
    while results[-1]["fault_tolerance"]["num_remote_worker_restarts"] < 1 and len(results) < 8:
        results.append(algo.train())  # the restarted runner is probed back into service
    last = results[-1]
    assert last["training_iteration"] == 1 + len(results)
    assert last["fault_tolerance"]["num_remote_worker_restarts"] >= 1
    assert last["fault_tolerance"]["num_healthy_workers"] == 2
    # Every iteration still sampled and trained: the other runner carried the one with the crash.
    assert all(r["env_runners"]["num_env_steps_sampled"] > 0 for r in results)
    assert all(r["learners"]["paddle_0"]["num_module_steps_trained"] > 0 for r in results)


def test_an_env_error_on_a_remote_runner_stops_the_run_with_its_message(ray_session, storage):
    """RLlib restarts a runner whose env raised and trains on without it; an env wrapped with
    `safety.report_errors` (as the package's own envs are) stops the run with the env's error."""
    from rllib_quantum.envs import make_cooperative_pong
    from rllib_quantum.safety import report_errors

    def creator(config):
        env = make_cooperative_pong({"max_cycles": 100})
        step, count = env.step, [0]

        def failing_step(actions):
            count[0] += 1
            if count[0] > 50 and config.worker_index > 0:
                raise ValueError("ball left the known universe")
            return step(actions)

        env.step = failing_step
        return report_errors(env)

    message = _failure_of(creator, storage, iterations=3)
    assert "ValueError: ball left the known universe (in env.step)" in message, message
    assert len(message.splitlines()) == 1

