"""``model_config["inverse_temperature"]``: the categorical logits' factor (a number, or a schedule over
env steps that the learner follows). Checked against the module without it (same seed, same
weights), per module inside a stacked group, in the Fisher matrix (per-state autograd), and in a
real PPO run: the learner moves it after every update and the weight sync takes it to the runner."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.config import load_experiment
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules import QuantumModelConfig, QuantumPPORLModule, StackedQuantumMultiRLModule, validate_model_config
from rllib_quantum.modules.model_config import inverse_temperature_at
from tests._tiny import tiny

BOX5 = gym.spaces.Box(-1, 1, (5,), np.float32)
SCHEDULE = [[0, 1.0], [400, 3.0]]


def _module(beta, action_space=gym.spaces.Discrete(3), **extra):
    config = {"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "seed": 0, "inverse_temperature": beta, **extra}
    return QuantumPPORLModule(observation_space=BOX5, action_space=action_space, model_config=config)


@pytest.mark.parametrize(
    "value, fragment",
    [
        (0, "got 0"),
        (-1.5, "got -1.5"),
        (float("inf"), "got inf"),
        (True, "got True"),
        ("sharp", "got 'sharp'"),
        ([], "got []"),
        ([[1000, 2.0]], "env steps [1000] are not"),
        ([[0, 1.0], [0, 2.0]], "env steps [0, 0] are not"),
        ([[0, 1.0], [500, 0.0]], "values [1.0, 0.0] are not"),
        ([[0, 1.0, 2.0]], "a schedule [[env_steps, value], ...]"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(value, fragment):
    with pytest.raises(ConfigError) as err:
        validate_model_config({"inverse_temperature": value}, prefix="model_config")
    assert err.value.key == "model_config.inverse_temperature"
    assert fragment in str(err.value) and "a finite number > 0" in str(err.value)


def test_a_yaml_experiment_refuses_it_for_box_actions_before_ray_starts():
    with pytest.raises(ConfigError) as err:
        load_experiment("configs/quantum_independent_spread.yaml",
                        {"env_config.continuous_actions": True, "model_config.inverse_temperature": 2.0})
    assert err.value.key.endswith("model_config.inverse_temperature")
    assert "Gaussian head" in str(err.value) and "leave it at 1.0" in str(err.value)


def test_the_schedule_round_trips_and_interpolates_like_rllibs_schedules():
    cfg = QuantumModelConfig.from_dict({"inverse_temperature": SCHEDULE}, BOX5, gym.spaces.Discrete(3))
    assert cfg.inverse_temperature == ((0, 1.0), (400, 3.0))
    assert cfg.to_dict()["inverse_temperature"] == SCHEDULE
    assert QuantumModelConfig.from_dict(cfg.to_dict(), BOX5, gym.spaces.Discrete(3)) == cfg
    assert [inverse_temperature_at(cfg.inverse_temperature, t) for t in (0, 100, 400, 10**6)] == [1.0, 1.5, 3.0, 3.0]
    # RLlib's own piecewise schedule (what PPO's lr and entropy_coeff follow) gives the same values
    from ray.rllib.utils.schedules.scheduler import Scheduler

    rllib = Scheduler(SCHEDULE, framework="torch")
    for t in (0, 100, 250, 400, 10**6):
        assert float(rllib.update(t)) == pytest.approx(inverse_temperature_at(cfg.inverse_temperature, t))


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([3, 2])])
def test_logits_are_the_factor_times_the_plain_modules(action_space):
    plain, sharp = _module(1.0, action_space), _module(2.5, action_space)
    assert "inverse_temperature" not in plain.state_dict()  # 1.0: no buffer, no factor
    assert float(sharp.state_dict()["inverse_temperature"]) == 2.5
    obs = {Columns.OBS: torch.rand(7, 5, generator=torch.Generator().manual_seed(0)) * 2 - 1}
    for method in ("forward_train", "forward_exploration", "forward_inference"):
        want = getattr(plain, method)(obs)[Columns.ACTION_DIST_INPUTS]
        torch.testing.assert_close(getattr(sharp, method)(obs)[Columns.ACTION_DIST_INPUTS], 2.5 * want)
    logits_plain = plain.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
    logits_sharp = sharp.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
    dist = sharp.get_inference_action_dist_cls()
    greedy = [dist.from_logits(x).to_deterministic().sample() for x in (logits_plain, logits_sharp)]
    assert torch.equal(*greedy)  # argmax unchanged
    assert bool((dist.from_logits(logits_sharp).entropy() < dist.from_logits(logits_plain).entropy()).all())


def test_a_stacked_group_applies_each_modules_own_factor():
    def multi(cls):
        spec = RLModuleSpec(module_class=QuantumPPORLModule, observation_space=BOX5, action_space=gym.spaces.Discrete(3),
                            model_config={"circuit": {"n_qubits": 5, "n_layers": 1}, "readout": "linear",
                                          "inverse_temperature": SCHEDULE, "seed": 1})
        return MultiRLModuleSpec(multi_rl_module_class=cls, rl_module_specs={"a": spec, "b": spec, "c": spec}).build()

    stacked, plain = multi(StackedQuantumMultiRLModule), multi(MultiRLModule)
    for multi_module in (stacked, plain):  # modules at different points of their schedules
        for mid, beta in zip("abc", (1.0, 2.0, 0.5)):
            multi_module[mid].inverse_temperature.fill_(beta)
    assert stacked.stack_groups(["a", "b", "c"]) == [["a", "b", "c"]]
    batch = {mid: {Columns.OBS: torch.rand(rows, 5) * 2 - 1} for mid, rows in zip("abc", (4, 6, 1))}
    got, want = stacked.forward_train(batch), plain.forward_train(batch)
    for mid in "abc":
        torch.testing.assert_close(got[mid][Columns.ACTION_DIST_INPUTS], want[mid][Columns.ACTION_DIST_INPUTS], atol=2e-6, rtol=1e-5)


def test_ppo_moves_it_along_the_schedule_and_the_runner_and_checkpoint_follow(build_algo, tmp_path):
    """Real PPO on pong features: after each update the learner's modules hold the schedule's value
    at the env steps sampled so far, the weight sync takes it to the env runner (which samples the
    next batch with it), it is logged under ``quantum/``, and a checkpoint restores it."""
    exp = load_experiment("configs/quantum_independent_pong_features.yaml",
                          tiny("quantum", **{"model_config.inverse_temperature": SCHEDULE}))
    algo = build_algo(exp.algo_config)
    learner, runner = algo.learner_group._learner, algo.env_runner
    assert float(learner.module["paddle_0"].unwrapped().inverse_temperature) == 1.0
    for _ in range(2):
        result = algo.train()
        steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
        expected = float(np.interp(steps, [0, 400], [1.0, 3.0]))
        for mid in ("paddle_0", "paddle_1"):
            assert float(learner.module[mid].unwrapped().inverse_temperature) == pytest.approx(expected)
            assert float(runner.module[mid].inverse_temperature) == pytest.approx(expected)
            assert result["learners"][mid]["quantum/actor_inverse_temperature"] == pytest.approx(expected)
    assert 1.0 < expected <= 3.0
    restored = Algorithm.from_checkpoint(algo.save_to_path(str(tmp_path / "checkpoint")))
    try:
        assert float(restored.learner_group._learner.module["paddle_0"].unwrapped().inverse_temperature) == pytest.approx(expected)
    finally:
        restored.stop()


def test_the_classical_baseline_takes_the_same_key_and_schedule(build_algo):
    """``module: classical`` with ``model_config.inverse_temperature``: RLlib's default PPO module
    with the factor (TemperedPPOTorchRLModule), followed by the learner like the quantum modules';
    without the key the classical spec is RLlib's own default module, as before."""
    from rllib_quantum.learners import QuantumPPOTorchLearner
    from rllib_quantum.modules import TemperedPPOTorchRLModule

    # the shipped classical config's mirror dropped: without either key RLlib's own module
    plain = load_experiment("configs/classical_independent_pong_features.yaml", tiny("classical", **{"model_config.mirror": None}))
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

    assert plain.algo_config.rl_module_spec.rl_module_specs["paddle_0"].module_class is DefaultPPOTorchRLModule
    exp = load_experiment("configs/classical_independent_pong_features.yaml",
                          tiny("classical", **{"model_config.inverse_temperature": SCHEDULE}))
    assert exp.algo_config.learner_class is QuantumPPOTorchLearner
    algo = build_algo(exp.algo_config)
    module = algo.learner_group._learner.module["paddle_0"]
    assert isinstance(module, TemperedPPOTorchRLModule)
    obs = {Columns.OBS: torch.rand(3, 5) * 2 - 1}
    with torch.no_grad():
        module.inverse_temperature.fill_(1.0)
        base = module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
        module.inverse_temperature.fill_(2.0)
        torch.testing.assert_close(module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS], 2.0 * base)
    result = algo.train()
    expected = float(np.interp(result["env_runners"]["num_env_steps_sampled_lifetime"], [0, 400], [1.0, 3.0]))
    assert float(module.inverse_temperature) == pytest.approx(expected)
    assert float(algo.env_runner.module["paddle_1"].inverse_temperature) == pytest.approx(expected)


@pytest.mark.parametrize("value, fragment", [(0, "got 0"), ([[5, 1.0]], "env steps [5] are not")])
def test_the_classical_key_is_checked_before_ray_starts(value, fragment):
    with pytest.raises(ConfigError) as err:
        load_experiment("configs/classical_independent_pong_features.yaml", {"model_config.inverse_temperature": value})
    assert err.value.key == "model_config.inverse_temperature" and fragment in str(err.value)
