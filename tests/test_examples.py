"""Every script in examples/ runs end to end with tiny flags, as a user would run it.

Each runs as a subprocess (it starts its own Ray, so it cannot clash with the session instance)
with HOME, TMPDIR and RAY_TMPDIR in a fresh temp folder; afterwards nothing may exist under the
temp HOME's ``ray_results``.
"""

import re
from pathlib import Path

import pytest

from _helpers import ROOT, run_script
from _tiny import TINY

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def run_example(script, args, home: Path, timeout=300):
    return run_script(f"examples/{script}", args, home, timeout)


def _set_flags():
    return ["--set", *(f"{k}={v}" for k, v in TINY.items())]


def test_every_example_has_a_test():
    assert EXAMPLES == [
        "quantum_layer_basics.py", "swap_in_quantum_policies.py", "swap_in_simple_spread.py", "swap_in_sisl_pursuit.py",
        "train_independent_quantum_pong.py",
    ]


def test_quantum_layer_basics(sandbox):
    out = run_example("quantum_layer_basics.py", ["--steps", "3", "--batch", "8", "--n-layers", "1"], sandbox)
    assert "execution path: fast, output shape: (8, 4)" in out
    assert "3 training steps in" in out
    gap = float(re.search(r"max \|fast - PennyLane\| on 8 inputs: (\S+)", out).group(1))
    assert gap < 1e-5


def test_swap_in_quantum_policies(sandbox):
    out = run_example("swap_in_quantum_policies.py", [
        "--iterations", "1", "--max-cycles", "100", "--train-batch-size-per-learner", "200",
        "--minibatch-size", "100", "--num-epochs", "1", "--num-env-runners", "0", "--n-layers", "1",
    ], sandbox)
    assert "paddle_0: QuantumPPORLModule" in out and "paddle_1: QuantumPPORLModule" in out
    assert re.search(r"iteration 1: env steps\s+200\s+mean return per agent", out), out[-2000:]


def _check_swapped_run(out, agents, storage, name, action_space, iterations, env_steps):
    """The RLlib-style example trained a QuantumPPORLModule per agent: every module learned from
    its own agent's steps in every iteration, and the Algorithm logged under ``storage``."""
    for agent in agents:
        assert re.search(rf"^{agent}: QuantumPPORLModule, observations .*, actions {re.escape(action_space)}", out, re.M), out[-2000:]
    lines = re.findall(r"^iteration (\d+): env steps (\d+) \| agent steps trained per module: (.*) \| mean return per agent: (.*)$", out, re.M)
    assert [int(i) for i, *_ in lines] == list(range(1, iterations + 1)), out[-2000:]
    for i, (_, steps, trained, returns) in enumerate(lines, start=1):
        assert int(steps) == env_steps * i
        per_module = dict(item.split() for item in trained.split(", "))
        assert sorted(per_module) == sorted(agents) and all(int(n) > 0 for n in per_module.values()), trained
    returns = dict(item.split() for item in lines[-1][3].split(", "))  # episodes finished by the last iteration
    assert sorted(returns) == sorted(agents)
    logdir = Path(re.search(r"algorithm logs: (\S+)", out).group(1))
    assert logdir.parent == storage / "examples" / name and logdir.is_dir()


def test_swap_in_sisl_pursuit(sandbox):
    """SISL pursuit (7x7x3 images, Discrete(5)): RLlib-style config without any module spec."""
    storage = sandbox / "results"
    out = run_example("swap_in_sisl_pursuit.py", [
        "--iterations", "1", "--n-pursuers", "2", "--max-cycles", "25", "--train-batch-size-per-learner", "200",
        "--minibatch-size", "100", "--num-epochs", "1", "--num-env-runners", "0", "--n-layers", "1",
        "--storage", str(storage),
    ], sandbox)
    _check_swapped_run(out, ["pursuer_0", "pursuer_1"], storage, "swap-in-sisl-pursuit", "Discrete(5)", 1, 200)
    assert "observations (7, 7, 3)" in out
    assert re.search(r"^RESULT pursuit: 1 iterations, 200 env steps, 2 quantum policies", out, re.M)


def test_swap_in_simple_spread(sandbox):
    """mpe2 simple spread with continuous actions (the Gaussian head), the user's own register_env."""
    storage = sandbox / "results"
    out = run_example("swap_in_simple_spread.py", [
        "--iterations", "2", "--train-batch-size-per-learner", "200", "--minibatch-size", "100",
        "--num-epochs", "1", "--num-env-runners", "0", "--n-layers", "1", "--storage", str(storage),
    ], sandbox)
    _check_swapped_run(out, ["agent_0", "agent_1"], storage, "swap-in-simple-spread", "Box(0.0, 1.0, (5,), float32)", 2, 200)
    assert "observations (12,)" in out
    assert re.search(r"^RESULT simple spread \(continuous actions\): 2 iterations, 400 env steps, 2 quantum policies", out, re.M)


def test_train_independent_quantum_pong(sandbox):
    storage = sandbox / "results"
    out = run_example("train_independent_quantum_pong.py", [
        "--iterations", "1", "--n-layers", "1", "--eval-episodes", "1", "--storage", str(storage), *_set_flags(),
    ], sandbox)
    assert re.search(r"iter\s+1\s+env steps\s+200\s+mean return", out), out[-2000:]
    assert "greedy actions, 1 episodes" in out
    logdir = Path(re.search(r"algorithm logs: (\S+)", out).group(1))
    assert logdir.parent == storage / "examples" / "quantum-independent-pong-features" and logdir.is_dir()


def test_flags_from_args_dataclass(capsys):
    """The shared helper the examples use: one flag per ``Args`` field, typed, with --help text."""
    import dataclasses
    from typing import Optional

    from rllib_quantum.script_args import build_parser, parse_args

    @dataclasses.dataclass
    class Args:
        iterations: int = 20
        lr: float = 0.01
        set: tuple = ()
        render: bool = True
        address: Optional[str] = "auto"

    assert parse_args(Args, []) == Args()
    got = parse_args(Args, ["--iterations", "1", "--lr", "1e-3", "--set", "ppo.lr=0.1", "env_config.max_cycles=100",
                            "--no-render", "--address", "none"])
    assert got == Args(iterations=1, lr=1e-3, set=("ppo.lr=0.1", "env_config.max_cycles=100"), render=False, address=None)
    # a repeated list flag adds its values (the last one used to win silently, dropping the others)
    assert parse_args(Args, ["--set", "a=1", "--set", "b=2", "c=3"]).set == ("a=1", "b=2", "c=3")
    for bad in (["--iterations", "many"], ["--unknown", "1"]):
        with pytest.raises(SystemExit) as err:
            parse_args(Args, bad)
        assert err.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
    assert "--iterations ITERATIONS" in build_parser(Args).format_help()
