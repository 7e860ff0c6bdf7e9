"""YAML experiments: every shipped config builds; overrides; bad input named before Ray starts."""

from pathlib import Path

import pytest
import yaml

from rllib_quantum.config import apply_overrides, build_experiment, load_experiment, parse_overrides
from rllib_quantum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
BASE = yaml.safe_load((ROOT / "configs" / "quantum_independent_pong_features.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_builds(path):
    exp = load_experiment(path)
    raw = yaml.safe_load(path.read_text())
    assert exp.name == raw["name"]
    assert exp.stop == raw["stop"]
    assert exp.trainable.__name__ == "PPO"
    assert exp.algo_config.enable_rl_module_and_learner  # new API stack
    assert sorted(exp.algo_config.rl_module_spec.rl_module_specs) == sorted(exp.plan.module_ids)
    for key, value in raw.get("ppo", {}).items():
        assert getattr(exp.algo_config, "lambda_" if key == "lambda" else key) == value, key
    for module_id in exp.plan.module_ids:
        for agent in exp.plan.agents_of_module[module_id]:
            assert exp.algo_config.policy_mapping_fn(agent, None) == module_id


def test_independent_quantum_pong_maps_each_paddle_to_its_own_quantum_module():
    exp = load_experiment(ROOT / "configs" / "quantum_independent_pong_features.yaml")
    specs = exp.algo_config.rl_module_spec.rl_module_specs
    assert sorted(specs) == ["paddle_0", "paddle_1"]
    assert all(s.module_class.__name__ == "QuantumPPORLModule" for s in specs.values())
    assert specs["paddle_0"].model_config["circuit"]["n_qubits"] == 5
    modules = exp.build_modules()
    assert modules["paddle_0"] is not modules["paddle_1"]
    # weights, input and output scaling (the linear read-out reads all 5 wires)
    assert modules["paddle_0"].parameter_counts()["quantum"] == 4 * 5 * 3 + 4 * 5 + 5


def test_overrides_set_dotted_keys_and_parse_yaml_values():
    overrides = parse_overrides(["ppo.lr=0.02", "model_config.circuit.n_qubits=6", "env_config.max_cycles=50", "stop.training_iteration=3"])
    assert overrides == {"ppo.lr": 0.02, "model_config.circuit.n_qubits": 6, "env_config.max_cycles": 50, "stop.training_iteration": 3}
    exp = build_experiment(BASE, overrides)
    assert exp.algo_config.lr == 0.02
    assert exp.algo_config.env_config["max_cycles"] == 50
    assert exp.stop == {"env_runners/num_env_steps_sampled_lifetime": 500000, "training_iteration": 3}
    module = exp.build_modules()["paddle_0"]
    assert module.actor.spec.n_qubits == 6 and module.resolved_model_config["encoder"] == "none"  # 5 features zero-padded
    assert BASE["ppo"]["lr"] == [[0, 0.01], [500000, 0.001]]  # the loaded dict itself is not changed


def test_missing_keys_and_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"strategy: missing config key\(s\) \['strategy'\]"):
        build_experiment({k: v for k, v in BASE.items() if k != "strategy"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "module": "hybrid"}))
    with pytest.raises(ConfigError, match=r"bad.yaml: module: must be one of"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match=r"--set: expects key=value"):
        parse_overrides(["ppo.lr"])
    with pytest.raises(ConfigError, match=r"ppo.lr: override 'ppo.lr.x' needs a mapping here"):
        apply_overrides(BASE, {"ppo.lr.x": 1})
