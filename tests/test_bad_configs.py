"""Every bad input refused before Ray starts: one ConfigError naming the key path (and the file).

One table of bad experiment configs (a shipped YAML plus dotted overrides, the way `--set` writes
them) and one of bad YAML files; each row names the key path the error must carry. A handful go
through the CLI too: exit code 2, one line on stderr, no traceback, no Ray.
"""

from pathlib import Path

import pytest
import ray
import yaml

from rllib_quantum.cli import main
from rllib_quantum.config import build_experiment, load_experiment
from rllib_quantum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
QUANTUM = ROOT / "configs" / "quantum_independent_pong_features.yaml"
CLASSICAL_PIXELS = ROOT / "configs" / "classical_independent_pong_pixels.yaml"
AVERAGED = ROOT / "configs" / "quantum_averaged_pong_features.yaml"
SPREAD = "rllib_quantum/simple_spread"
BASE = yaml.safe_load(QUANTUM.read_text())

# (overrides on the quantum features config, key path the error must name, a fragment of its message)
BAD_OVERRIDES = [
    # our own top-level keys
    ({"strategy": "federated"}, "strategy", "must be one of ['independent', 'shared', 'joint', 'averaged']"),
    ({"module": "hybrid"}, "module", "must be one of ['quantum', 'classical']"),
    ({"env": "pong"}, "env", "must be one of ['rllib_quantum/cooperative_pong'"),
    ({"resources": {"cpus": 2}}, "resources", "unknown config key(s) ['resources']"),
    ({"seed": "zero"}, "seed", "must be an int >= 0"),
    ({"seed": -1}, "seed", "must be an int >= 0"),
    ({"name": 3}, "name", "must be a string"),
    ({"averaging": {"every": 2}}, "averaging", "only used with strategy: averaged"),
    ({"checkpoint.frequency": -1}, "checkpoint.frequency", "must be an int >= 0"),
    ({"checkpoint.every": 3}, "checkpoint", "unknown key(s) ['every']"),
    # env_config
    ({"env_config.obs": "rgb"}, "env_config.obs", "features"),
    ({"env_config.speed": 3}, "env_config", "speed"),
    ({"env_config.max_cycles": 0}, "env_config.max_cycles", "0"),
    # simple spread's env_config (the whole section replaced: pong's keys are not spread's)
    ({"env": SPREAD, "env_config": {"obs": "features"}}, "env_config", "unknown key(s) ['obs']; allowed: ['N', 'continuous_actions', 'max_cycles', 'local_ratio']"),
    ({"env": SPREAD, "env_config": {"N": 0}}, "env_config.N", "must be an int >= 1 (number of agents and landmarks), got 0"),
    ({"env": SPREAD, "env_config": {"N": 2.5}}, "env_config.N", "got 2.5 (float)"),
    ({"env": SPREAD, "env_config": {"N": True}}, "env_config.N", "got True (bool)"),
    ({"env": SPREAD, "env_config": {"continuous_actions": "yes"}}, "env_config.continuous_actions", "must be true (Box(0, 1, (5,)) actions) or false"),
    ({"env": SPREAD, "env_config": {"max_cycles": 0}}, "env_config.max_cycles", "must be an int >= 1 (steps per episode), got 0"),
    ({"env": SPREAD, "env_config": {"local_ratio": 1.5}}, "env_config.local_ratio", "must be a number in [0, 1]"),
    ({"env": SPREAD, "env_config": {"local_ratio": float("nan")}}, "env_config.local_ratio", "got nan"),
    ({"env": SPREAD, "env_config": {"N": 2}, "strategy": "joint"}, "strategy", "'joint' needs a joint-agent variant"),
    # (the pong config's mirror dropped: simple spread's 18 features take no pong mirror)
    ({"env": SPREAD, "env_config": {"max_cycles": 25}, "model_config": {"mirror": None}, "stop": {"env_runners/episode_len_mean": 30}},
     "stop.env_runners/episode_len_mean", "(0, 25]"),
    # RLlib's own settings: our rules, RLlib defaults' types, RLlib's validate()
    ({"ppo.learning_rate": 0.1}, "ppo", "unknown key(s) ['learning_rate']"),
    ({"ppo.lr": "fast"}, "ppo.lr", "must be a number > 0, or a schedule"),
    ({"ppo.lr": -0.1}, "ppo.lr", "got -0.1"),
    ({"ppo.lr": [[100, 0.1], [200, 0.01]]}, "ppo.lr", "the first at timestep 0"),
    ({"ppo.gamma": 1.5}, "ppo.gamma", "must be a number in [0, 1], got 1.5"),
    ({"ppo.num_epochs": -1}, "ppo.num_epochs", "must be an int >= 1, got -1"),
    ({"ppo.clip_param": "x"}, "ppo.clip_param", "got 'x'"),
    ({"ppo.use_kl_loss": "yes"}, "ppo.use_kl_loss", "must be true or false"),
    ({"ppo.grad_clip_by": "foo"}, "ppo.grad_clip_by", "must be one of ['value', 'norm', 'global_norm']"),
    ({"ppo.minibatch_size": 100000}, "ppo.minibatch_size", "refused by RLlib"),
    ({"env_runners.num_workers": 2}, "env_runners", "unknown key(s) ['num_workers']"),
    ({"env_runners.num_env_runners": -2}, "env_runners.num_env_runners", "must be an int >= 0"),
    ({"env_runners.num_envs_per_env_runner": 0}, "env_runners.num_envs_per_env_runner", "must be an int >= 1"),
    ({"env_runners.rollout_fragment_length": "auto2"}, "env_runners.rollout_fragment_length", "or 'auto'"),
    ({"env_runners.num_cpus_per_env_runner": -1}, "env_runners.num_cpus_per_env_runner", "must be a number >= 0"),
    ({"env_runners.sample_timeout_s": 0}, "env_runners.sample_timeout_s", "must be a number > 0"),
    ({"learners.num_learners": -1}, "learners.num_learners", "must be an int >= 0"),
    ({"fault_tolerance.max_num_env_runner_restarts": -1}, "fault_tolerance.max_num_env_runner_restarts", ">= 0"),
    ({"fault_tolerance.restart_failed_env_runners": "maybe"}, "fault_tolerance.restart_failed_env_runners", "true or false"),
    # RLlib's periodic evaluation
    ({"evaluation": 10}, "evaluation", "must be a mapping"),
    ({"evaluation.evaluation_interval": 0}, "evaluation.evaluation_interval", "must be an int >= 1 or null"),
    ({"evaluation.evaluation_duration": "all"}, "evaluation.evaluation_duration", "or 'auto'"),
    ({"evaluation.evaluation_duration_unit": "steps"}, "evaluation.evaluation_duration_unit", "['episodes', 'timesteps']"),
    ({"evaluation.evaluation_num_env_runners": -1}, "evaluation.evaluation_num_env_runners", "must be an int >= 0"),
    ({"evaluation.evaluation_parallel_to_training": "yes"}, "evaluation.evaluation_parallel_to_training", "true or false"),
    ({"evaluation.offline_evaluation_interval": 5}, "evaluation", "unknown key(s) ['offline_evaluation_interval']"),
    ({"evaluation.evaluation_config": [1]}, "evaluation.evaluation_config", "must be a mapping of AlgorithmConfig settings"),
    ({"evaluation.evaluation_config.greedy": True}, "evaluation.evaluation_config", "unknown AlgorithmConfig setting(s) ['greedy']"),
    ({"evaluation.evaluation_config.explore": "no"}, "evaluation.evaluation_config.explore", "must be true or false"),
    ({"evaluation.evaluation_config.num_envs_per_env_runner": 0}, "evaluation.evaluation_config.num_envs_per_env_runner", "must be an int >= 1"),
    ({"evaluation.evaluation_config.env_config.max_cycles": 0}, "evaluation.evaluation_config.env_config.max_cycles", "got 0"),
    ({"evaluation.evaluation_config.env_config.paddles": 3}, "evaluation.evaluation_config.env_config", "paddles"),
    # the package's process settings
    ({"gc_freeze": "yes"}, "gc_freeze", "must be true or false, got 'yes'"),
    ({"stack_modules": 1}, "stack_modules", "must be true or false, got 1"),
    # stop criteria
    ({"stop": []}, "stop", "must be a non-empty mapping"),
    ({"stop": {"training_iteration": 0}}, "stop.training_iteration", "must be an int >= 1 (a budget)"),
    ({"stop": {"env_runners/num_env_steps_sampled_lifetime": -5}}, "stop.env_runners/num_env_steps_sampled_lifetime", "> 0 (a budget)"),
    ({"stop": {"episode_reward_mean": 10}}, "stop.episode_reward_mean", "unknown metric 'episode_reward_mean'"),
    ({"stop": {"env_runners/agent_episode_returns_mean/paddle_9": 50}}, "stop.env_runners/agent_episode_returns_mean/paddle_9", "agents: ['paddle_0', 'paddle_1']"),
    ({"stop": {"env_runners/agent_episode_returns_mean/paddle_0": 150}}, "stop.env_runners/agent_episode_returns_mean/paddle_0", "never trigger"),
    ({"stop": {"env_runners/episode_return_mean": 201}}, "stop.env_runners/episode_return_mean", "<= 200"),
    ({"stop": {"env_runners/episode_len_mean": 1000}}, "stop.env_runners/episode_len_mean", "(0, 900]"),
    ({"stop": {"time_total_s": "1h"}}, "stop.time_total_s", "must be a number > 0"),
    # the modules
    ({"model_config.circuit.n_qubits": 0}, "model_config.circuit.n_qubits", "must be an int in 1..24, got 0"),
    ({"model_config.circuit.n_qubits": 10000}, "model_config.circuit.n_qubits", "a statevector of 10000 qubits needs 2**10000"),
    ({"model_config.circuit.ansatz": "qaoa"}, "model_config.circuit.ansatz", "must be one of"),
    ({"model_config.circuit.bogus": 1}, "model_config.circuit", "bogus"),
    ({"model_config.encoder": "none", "model_config.circuit.n_qubits": 3}, "model_config.encoder", "n_qubits=3"),
    ({"model_config.readout": "softmax"}, "model_config.readout", "must be one of"),
    ({"model_config.lr_multipliers.circuit": -1}, "model_config.lr_multipliers.circuit", ">= 0"),
    ({"model_config.critic_hiddens": "big"}, "model_config.critic_hiddens", "list of positive ints"),
    ({"model_config.colour": "blue"}, "model_config", "colour"),
]


@pytest.mark.parametrize("overrides, key, fragment", BAD_OVERRIDES, ids=[r[1] + "-" + str(i) for i, r in enumerate(BAD_OVERRIDES)])
def test_bad_config_names_its_key_path_before_ray_starts(overrides, key, fragment):
    was_running = ray.is_initialized()
    with pytest.raises(ConfigError) as info:
        build_experiment(BASE, overrides)
    assert info.value.key == key, str(info.value)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{key}: ")  # one style: "<key path>: <problem>"
    assert ray.is_initialized() == was_running


def test_the_table_is_large_enough():
    assert len(BAD_OVERRIDES) >= 30


def test_modules_that_cannot_take_their_observation_fail_on_the_driver():
    # A classical pixel module (RLlib's own CNN catalog) on 8x8 frames: RLlib's default filters do
    # not fit; the error names the module, not an env runner's IndexError.
    with pytest.raises(ConfigError) as info:
        load_experiment(CLASSICAL_PIXELS, {"env_config.frame_size": 8})
    assert info.value.key == "model_config" and "module 'paddle_0' cannot be built" in str(info.value)
    # A quantum pixel module whose conv filters do not fit 8x8 frames.
    with pytest.raises(ConfigError) as info:
        load_experiment(ROOT / "configs" / "quantum_independent_pong_pixels.yaml", {"env_config.frame_size": 8})
    assert info.value.key == "model_config.conv_filters"
    # Averaging options of the averaged strategy.
    with pytest.raises(ConfigError) as info:
        load_experiment(AVERAGED, {"averaging.every": 0})
    assert info.value.key == "averaging.every"


BAD_YAML = [
    ("env: [unclosed\n", "line 2, column 1", "not valid YAML"),
    ("env: a\n  strategy: b\n", "line 2, column 11", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo hacked']\n", "line 1, column 1", "no !!python or other tags"),
    ("env: !!python/name:os.system\n", "line 1, column 6", "no !!python or other tags"),
    ("- a\n- b\n", "", "must be a YAML mapping (key: value lines), got a list"),
    ("just text\n", "", "got a str"),
]


@pytest.mark.parametrize("text, key, fragment", BAD_YAML)
def test_bad_yaml_names_the_file_and_line(tmp_path, text, key, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.key == key and info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", str(QUANTUM), "--set", "ppo.lr=fast"], "quantum_independent_pong_features.yaml: ppo.lr: must be"),
        (["train", str(QUANTUM), "--set", "model_config.circuit.n_qubits=10000"], "model_config.circuit.n_qubits"),
        (["train", str(QUANTUM), "--set", "stop={episode_reward_mean: 5}"], "stop.episode_reward_mean: unknown metric"),
        (["describe", str(QUANTUM), "--set", "ppo.gamma=2"], "ppo.gamma: must be a number in [0, 1]"),
    ],
)
def test_cli_refuses_with_one_line_and_exit_2(capsys, args, fragment):
    was_running = ray.is_initialized()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rllib-quantum: error: ") and fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ray.is_initialized() == was_running


def test_cli_refuses_bad_yaml_files(tmp_path, capsys):
    path = tmp_path / "tagged.yaml"
    path.write_text("env: !!python/object/apply:os.system ['echo hacked']\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: line 1, column 6: not valid YAML" in err and "Traceback" not in err
