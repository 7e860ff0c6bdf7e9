"""Benchmark scripts run end to end with tiny flags (their numbers are not checked, only that they
measure and print): ``benchmarks/agent_scaling.py`` at N=2, one iteration, tiny batch;
``benchmarks/learner_batching.py`` at N=2, one round; ``benchmarks/learning.py`` for one seed, one
tiny iteration, with ``--set`` overrides (and its budget follows an overridden batch size);
``benchmarks/warm_start.py`` for one seed, a barely cloned policy and one iteration;
``benchmarks/last_iterates.py`` on two checkpoints of a tiny run.

Each runs as a subprocess (it starts its own Ray) with HOME, TMPDIR and RAY_TMPDIR in a fresh temp
folder; afterwards nothing may exist under the temp HOME's ``ray_results``.
"""

import re
import subprocess
import sys

import pytest
from _helpers import ROOT, import_benchmarks, run_script


def test_agent_scaling_smoke(sandbox):
    plot = sandbox / "agent_scaling.png"
    out = run_script("benchmarks/agent_scaling.py", [
        "--agents", "2", "--iterations", "1", "--batch", "100", "--minibatch", "50", "--epochs", "1",
        "--num-envs-per-env-runner", "2", "--no-classical", "--plot", str(plot),
    ], sandbox, timeout=120)
    # Both variants ran, and the stacked one really shared one circuit call between the 2 agents.
    assert re.search(r"N= 2 stacked .*StackedQuantumMultiRLModule, 1 call\(s\) per forward", out), out[-3000:]
    assert re.search(r"N= 2 unstacked .*MultiRLModule, 2 call\(s\) per forward", out), out[-3000:]
    rows = re.findall(r"^\| 2 \| (stacked|unstacked) \|((?: [0-9.]+ \|){8})$", out, re.M)
    assert [name for name, _ in rows] == ["stacked", "unstacked"], out[-3000:]
    for _, cells in rows:
        total = float(cells.split("|")[5])
        assert total > 0
    assert "stacked   package share:" in out and "unstacked package share:" in out
    assert re.search(r"Python garbage collection, seconds per iteration .*: N=2 stacked [0-9.]+, N=2 unstacked [0-9.]+", out), out[-3000:]
    assert plot.stat().st_size > 0 and f"plot: {plot}" in out


def test_learning_smoke(sandbox):
    out = run_script("benchmarks/learning.py", [
        "--variants", "quantum", "--seeds", "0", "--iterations", "1", "--eval-episodes", "1",
        "--set", "ppo.train_batch_size_per_learner=100", "ppo.minibatch_size=50", "ppo.num_epochs=1",
        "--set", "env_config.max_cycles=50", "ppo.lr=[[0, 0.01], [100, 0.001]]",
        "--set", "env_runners.num_envs_per_env_runner=2",  # repeated --set flags all apply
        "--storage", str(sandbox / "runs"), "--plots", str(sandbox / "plots"),
    ], sandbox, timeout=240)
    assert "every variant with --set ppo.train_batch_size_per_learner=100" in out, out[-3000:]
    assert "env_runners.num_envs_per_env_runner=2" in out, out[-3000:]
    # One row for the one seed, finite numbers: exactly 100 env steps, 25 on each of the 2 x 2 envs
    # (the config's 2 runners' envs, sampled by the one local runner); with the config's 2 x 64
    # envs one step each would already give 128.
    # (one iteration finishes no training episode: its training return is nan; one eval episode: no CI)
    [row] = re.findall(r"^\| quantum \| 0 \| (\d+) \| (nan|[-0-9.]+) \| ([-0-9.]+) \+- (?:nan|[0-9.]+) \| \d+ \| ([-0-9.]+) \+- (?:nan|[0-9.]+) \|$", out, re.M)
    assert int(row[0]) == 100, row
    assert (sandbox / "plots" / "learning_quantum.png").stat().st_size > 0
    assert f"curves: {sandbox / 'plots' / 'learning_quantum.png'}" in out
    # --curves-from redraws the stored runs' mean curves, without training; LABEL=FOLDER names a folder's runs
    out = run_script("benchmarks/learning.py", [
        "--variants", "quantum", "--curves-from", str(sandbox / "runs"), f"probe={sandbox / 'runs'}",
        "--plots", str(sandbox / "again"),
    ], sandbox, timeout=120)
    assert "quantum: 1 runs" in out and "probe: 1 runs" in out, out[-3000:]
    assert f"curves: {sandbox / 'again' / 'learning_comparison.png'}" in out, out[-3000:]
    # its table of the mean curves: the one 100-step iteration finished no episode, so no values
    assert "no run has a value of 'training return per paddle'" in out, out[-3000:]
    # and whether early returns predict final ones: no value anywhere, so no correlation either
    assert "| quantum | 0 | - | - | - |" in out and "| all | 0 | - | - | - |" in out, out[-3000:]
    assert "Started a local Ray instance" not in out


def test_learning_smoke_joint_strategy_reports_per_paddle_returns(sandbox):
    """`--set strategy=joint`: one agent on the joint env whose reward is both paddles'; the rows
    report it per paddle (halved)."""
    out = run_script("benchmarks/learning.py", [
        "--variants", "quantum", "--seeds", "0", "--iterations", "1", "--eval-episodes", "2",
        # 128 envs x 25 steps: every env ends an episode of 20 steps (+100/20 per paddle per step)
        # the joint env's 10 features and MultiDiscrete actions take no pong mirror: dropped
        "--set", "strategy=joint", "model_config.mirror=null", "ppo.train_batch_size_per_learner=3200", "ppo.minibatch_size=3200", "ppo.num_epochs=1",
        "env_config.max_cycles=20",
        "--storage", str(sandbox / "runs"), "--plots", str(sandbox / "plots"),
    ], sandbox, timeout=240)
    [row] = re.findall(r"^\| quantum \| 0 \| (\d+) \| ([-0-9.]+) \| ([-0-9.]+) \+- (?:nan|[0-9.]+) \| \d+ \| ([-0-9.]+) \+- (?:nan|[0-9.]+) \|$", out, re.M)
    # The ball needs more than 20 steps to reach a paddle from the centre, so every episode ends at
    # max_cycles with 100 per paddle: the joint agent's own return is 200, halved here (greedy and sampled).
    assert float(row[1]) == 100.0 and float(row[2]) == 100.0 and float(row[3]) == 100.0, row
    assert (sandbox / "plots" / "learning_quantum.png").stat().st_size > 0


def test_learning_refuses_a_bad_set_before_ray_starts():
    proc = subprocess.run(
        [sys.executable, "benchmarks/learning.py", "--variants", "quantum", "--set", "ppo.gamma=1.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "benchmarks/learning.py: error: ppo.gamma: must be a number in [0, 1], got 1.5" in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert "Started a local Ray instance" not in proc.stdout


def test_ppo_iteration_in_turns_smoke(sandbox):
    out = run_script("benchmarks/ppo_iteration.py", [
        "--iterations", "1", "--rounds", "2", "--batch", "200", "--minibatch", "100", "--epochs", "1",
        "--num-envs-per-env-runner", "2", "--skip-pennylane",
    ], sandbox, timeout=240)
    # Every variant timed in each round, the second round in reverse order; then one median per ratio.
    rounds = [re.findall(r"([\w-]+) [0-9.]+ s \(learner [0-9.]+\)", line) for line in re.findall(r"^round \d: (.*)$", out, re.M)]
    variants = ["quantum", "quantum-natural-gradient", "classical"]
    assert rounds == [variants, variants[::-1]], out[-3000:]
    for name in ("quantum", "quantum-natural-gradient"):
        for label in ("iteration", "learner update"):
            assert re.search(rf"^ratio {name} / classical {label} time, 2 rounds: median [0-9.]+ \(range [0-9.]+-[0-9.]+; "
                             r"per round [0-9.]+, [0-9.]+\)$", out, re.M), out[-3000:]


def test_learner_batching_smoke(sandbox):
    out = run_script("benchmarks/learner_batching.py", [
        "--agents", "2", "--rounds", "1", "--batch", "100", "--minibatch", "50", "--epochs", "1", "--no-pong",
    ], sandbox, timeout=120)
    rows = re.findall(r"^\| spread N=2, (quantum stacked|classical) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["quantum stacked", "classical"], out[-3000:]
    for _, rllib, ours, ratio in rows:
        assert float(rllib) > 0 and float(ours) > 0
        assert abs(float(ratio) - float(ours) / float(rllib)) < 0.03  # milliseconds to one decimal


def test_warm_start_smoke(sandbox):
    """A briefly cloned policy (50 Adam steps), one PPO iteration: the env runner plays otherwise
    before the cloned actors are loaded, and exactly as the clone did after (same greedy episodes)."""
    out = run_script("benchmarks/warm_start.py", [
        "--seeds", "0", "--iterations", "1", "--eval-episodes", "2", "--states", "2000", "--steps", "50",
        "--report-every", "1",
    ], sandbox, timeout=240)
    played = {name: re.search(rf"^seed 0: {name}, greedy: +greedy actions, (.*)$", out, re.M)
              for name in ("cloned actors", "env runner before loading", "env runner after loading")}
    assert all(played.values()), out[-3000:]
    assert played["env runner after loading"].group(1) == played["cloned actors"].group(1)
    assert played["env runner before loading"].group(1) != played["cloned actors"].group(1)
    assert re.search(r"^seed 0: iteration 1, \d+(\.0)? env steps", out, re.M), out[-3000:]
    assert re.search(r"^\| 0 \| [-0-9.]+ \| [-0-9.]+ \| (nan|[-0-9.]+) \| [-0-9.]+ \|$", out, re.M), out[-3000:]


def test_learning_budget_follows_the_batch_size():
    (learning,) = import_benchmarks("learning")
    from rllib_quantum.config import apply_overrides

    for batch, iterations in ((8000, 63), (4000, 125)):
        args = learning.Args(set=(f"ppo.train_batch_size_per_learner={batch}",))
        config = apply_overrides(*learning.variant_config("quantum", args))
        assert learning.budget_iterations(config) == iterations


def test_warm_start_logit_scale_keeps_the_ranking_and_scales_the_logits():
    circuit_capacity, warm_start = import_benchmarks("circuit_capacity", "warm_start")
    import torch
    import yaml
    from ray.rllib.core.columns import Columns

    config = yaml.safe_load((ROOT / "configs" / "quantum_independent_pong_features.yaml").read_text())
    torch.manual_seed(0)
    module = circuit_capacity.make_module(config["model_config"])
    obs = {Columns.OBS: torch.rand(64, 5) * 2 - 1}
    with torch.no_grad():
        before = module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
        warm_start.scale_logits({"paddle_0": module}, 0.5)
        after = module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(after, 0.5 * before)
    assert torch.equal(after.argmax(-1), before.argmax(-1))
    expval = circuit_capacity.make_module({**config["model_config"], "readout": "expval"})
    with pytest.raises(ValueError, match="--logit-scale needs the linear read-out"):
        warm_start.scale_logits({"paddle_0": expval}, 0.5)


@pytest.mark.parametrize("config", ["quantum_independent_pong_features", "classical_independent_pong_features"])
def test_throughput_variants_load_and_before_is_the_old_optimizer(config):
    """Every variant of ``benchmarks/throughput.py`` is a valid experiment (checked as the script
    loads it, without Ray); ``before`` has no mirror (and for the quantum config Adam), as when
    issue 7 opened, and ``shipped`` the mirror (and natural-gradient steps) the config sets."""
    (throughput,) = import_benchmarks("throughput")
    from rllib_quantum.config import load_experiment

    path = ROOT / "configs" / f"{config}.yaml"
    variants = throughput.variants(path)
    plans = {name: load_experiment(path, overrides) for name, overrides in variants.items()}
    assert list(variants)[0] == "before" and list(variants)[-1] == "shipped"
    mirror = {name: exp.spec["model_config"].get("mirror") for name, exp in plans.items()}
    assert mirror["before"] is None and mirror["shipped, but no mirror"] is None  # both configs ship it
    assert mirror["shipped"]["action_permutation"] == [0, 2, 1]
    if config.startswith("quantum"):
        natural = {name: exp.spec["model_config"].get("natural_gradient") for name, exp in plans.items()}
        assert natural["before"] is None and natural["shipped, but Adam for the actor"] is None
        assert natural["shipped"] == {"kl": 0.0001}
        assert natural["shipped, but no mirror"] == {"kl": 0.0001} and mirror["shipped, but Adam for the actor"] is not None
    else:
        assert "shipped, but Adam for the actor" not in variants


def test_last_iterates_smoke(build_algo, sandbox):
    """Two checkpoints of a tiny run: each played greedy and sampled, then their averaged weights."""
    from _tiny import tiny

    from rllib_quantum.config import load_experiment

    exp = load_experiment("configs/quantum_independent_pong_features.yaml", tiny("quantum"))
    algo = build_algo(exp.algo_config)
    trial = sandbox / "trial"
    for i in range(2):
        algo.train()
        algo.save(str(trial / f"checkpoint_{i:06d}"))
    out = run_script("benchmarks/last_iterates.py", ["--trial", str(trial), "--last", "2", "--episodes", "2", "--averages", "2"],
                     sandbox, timeout=120)
    score = r"paddle_0 [-0-9.]+ \+- [0-9.]+, paddle_1 [-0-9.]+ \+- [0-9.]+"
    for name in ("checkpoint_000000", "checkpoint_000001", "weights averaged over the last 2"):
        assert re.search(rf"^{name}: greedy {score} \| sampled {score}$", out, re.M), out[-3000:]
