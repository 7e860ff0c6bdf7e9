"""Every script in examples/ runs end to end with tiny flags, as a user would run it.

Each runs as a subprocess (it starts its own Ray, so it cannot clash with the session instance)
with HOME, TMPDIR and RAY_TMPDIR in a fresh temp folder; afterwards nothing may exist under the
temp HOME's ``ray_results``.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from _tiny import TINY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture
def sandbox():
    """A short temp folder (Ray's socket paths must stay under ~100 characters) used as HOME."""
    path = Path(tempfile.mkdtemp(prefix="rqx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_example(script, args, home: Path, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    env.update(
        HOME=str(home), TMPDIR=str(home), RAY_TMPDIR=str(home), RAY_AUTH_MODE="disabled",
        PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
    )
    proc = subprocess.run(
        [sys.executable, f"examples/{script}", *args], cwd=ROOT, env=env, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
    assert not (home / "ray_results").exists(), f"{script} wrote {list((home / 'ray_results').rglob('*'))}"
    return proc.stdout


def _set_flags():
    return ["--set", *(f"{k}={v}" for k, v in TINY.items())]


def test_every_example_has_a_test():
    assert EXAMPLES == ["quantum_layer_basics.py", "swap_in_quantum_policies.py", "train_independent_quantum_pong.py"]


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
    for bad in (["--iterations", "many"], ["--unknown", "1"]):
        with pytest.raises(SystemExit) as err:
            parse_args(Args, bad)
        assert err.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
    assert "--iterations ITERATIONS" in build_parser(Args).format_help()
