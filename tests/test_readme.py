"""The README's commands are the ones that exist and its Python example runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_the_two_commands_exist_and_ci_calls_the_test_command():
    first = _blocks("bash")[0]
    assert "make demo" in first and "make test" in first
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: setup\n\t\$\(BIN\)/rllib-quantum train \$\(DEMO_CONFIG\)", makefile, flags=re.M)
    assert re.search(r"^test: setup\n\t\$\(BIN\)/python -m pytest", makefile, flags=re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)
    # the demo config the Makefile runs is a shipped config
    demo = re.search(r"^DEMO_CONFIG \?= (\S+)", makefile, flags=re.M).group(1)
    assert (ROOT / demo).is_file()


def test_every_config_the_readme_names_exists():
    for name in set(re.findall(r"`(\w+\.yaml)`", README)):
        assert (ROOT / "configs" / name).is_file(), name


def test_readme_python_example_runs_both_tune_entry_points(tmp_path):
    example = next(b for b in _blocks("python") if "load_experiment" in b)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    script = tmp_path / "example.py"
    # Same code; only the batch is made small so the test stays fast.
    script.write_text(
        example.replace(
            'overrides={"stop.training_iteration": 2}',
            'overrides={"stop.training_iteration": 2, "ppo.train_batch_size_per_learner": 200, '
            '"ppo.minibatch_size": 100, "ppo.num_epochs": 1, "env_config.max_cycles": 100, '
            '"env_runners.num_envs_per_env_runner": 1}',
        )
    )
    assert "train_batch_size_per_learner" in script.read_text(), "README example changed: update this test"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout.strip().splitlines()[-1]  # the example's print(): per-agent mean returns
    assert re.fullmatch(r"\{'paddle_[01]': np.float64\([-\d.]+\), 'paddle_[01]': np.float64\([-\d.]+\)\}", printed), printed
    assert "'paddle_0'" in printed and "'paddle_1'" in printed
    runs = list((tmp_path / "results" / "quantum-independent-pong-features").glob("PPO_*/progress.csv"))
    assert len(runs) == 2  # one trial from tune.run, one from Tuner.fit


def test_readme_swap_in_example_builds_quantum_modules():
    example = next(b for b in _blocks("python") if "with_quantum_policies(" in b)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    config, quantum = namespace["config"], namespace["quantum"]
    specs = quantum.rl_module_spec.rl_module_specs
    assert {m: s.module_class.__name__ for m, s in specs.items()} == {
        "paddle_0": "QuantumPPORLModule", "paddle_1": "QuantumPPORLModule"}
    assert quantum.lr == config.lr == 0.001 and quantum.policy_mapping_fn is config.policy_mapping_fn
    # The original (RLlib-style: policies and a mapping, no module spec) is untouched: still RLlib's default.
    assert config.rl_module_spec.module_class.__name__ == "DefaultPPOTorchRLModule"
