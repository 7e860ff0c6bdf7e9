"""``model_config["mirror"]``: a quantum policy and critic made equivariant under a reflection of the
task. Checked against the plain module with the same weights (the logits are the mean over the state
and its mirror image, written out here), for exact equivariance, in the Fisher matrix (per-state
autograd), inside a stacked multi-module, and in real PPO runs: a YAML experiment with
natural-gradient steps, and the swap on a multi-agent config written the RLlib way on CartPole."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.config import load_experiment
from rllib_quantum.errors import ConfigError
from rllib_quantum.learners import natural_gradient
from rllib_quantum.modules import QuantumModelConfig, QuantumPPORLModule, StackedQuantumMultiRLModule, validate_model_config
from rllib_quantum.modules.model_config import MirrorConfig
from tests._tiny import tiny

BOX5 = gym.spaces.Box(-1, 1, (5,), np.float32)
SIGNS = [1, -1, 1, -1, -1]  # cooperative pong's features: ball x, ball y, ball vx, ball vy, paddle y
PERM = [0, 2, 1]  # stay, up, down: up and down swap
PONG_MIRROR = {"observation_signs": SIGNS, "action_permutation": PERM}


def _module(mirror=PONG_MIRROR, seed=0, **extra):
    config = {"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "seed": seed, "mirror": mirror, **extra}
    return QuantumPPORLModule(observation_space=BOX5, action_space=gym.spaces.Discrete(3), model_config=config)


def _obs(rows, seed=1):
    return torch.rand(rows, 5, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _means_over_the_reflection(plain, obs):
    """What a mirrored module with ``plain``'s weights must give, written out from ``plain`` itself:
    the logits ``0.5 (l(s) + l(m(s))[perm])`` and values ``0.5 (V(s) + V(m(s)))``."""
    flipped = obs * torch.tensor(SIGNS, dtype=torch.float32)
    with torch.no_grad():
        logits = 0.5 * (plain.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
                        + plain.forward_inference({Columns.OBS: flipped})[Columns.ACTION_DIST_INPUTS][:, PERM])
        values = 0.5 * (plain.compute_values({Columns.OBS: obs}) + plain.compute_values({Columns.OBS: flipped}))
    return logits, values


@pytest.mark.parametrize(
    "value, key, fragment",
    [
        ([1, -1], "mirror", "must be None or a dict with exactly the keys"),
        ({"observation_signs": SIGNS}, "mirror", "exactly the keys ['observation_signs', 'action_permutation']"),
        ({**PONG_MIRROR, "axis": 1}, "mirror", "exactly the keys"),
        ({**PONG_MIRROR, "observation_signs": [1, 0, 1, -1, -1]}, "mirror.observation_signs", "1 and -1"),
        ({**PONG_MIRROR, "observation_signs": [True, -1, 1, -1, -1]}, "mirror.observation_signs", "1 and -1"),
        ({**PONG_MIRROR, "observation_signs": []}, "mirror.observation_signs", "non-empty"),
        ({**PONG_MIRROR, "action_permutation": [0, 1, 1]}, "mirror.action_permutation", "got [0, 1, 1]"),
        ({**PONG_MIRROR, "action_permutation": [1, 2, 0]}, "mirror.action_permutation", "its own inverse"),
        ({**PONG_MIRROR, "action_permutation": [0, 2.5, 1]}, "mirror.action_permutation", "permutation of range(n)"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(value, key, fragment):
    with pytest.raises(ConfigError) as err:
        validate_model_config({"mirror": value}, prefix="model_config")
    assert err.value.key == f"model_config.{key}"
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "obs_space, action_space, key, fragment",
    [
        (gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(3), "mirror.observation_signs", "one sign per observation entry (4), got 5"),
        (BOX5, gym.spaces.Discrete(4), "mirror.action_permutation", "needs Discrete(3) actions"),
        (BOX5, gym.spaces.Box(-1, 1, (3,), np.float32), "mirror.action_permutation", "diag_gaussian"),
        (gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), gym.spaces.Discrete(3), "mirror", "needs a vector observation"),
    ],
)
def test_spaces_that_do_not_fit_the_reflection_are_refused(obs_space, action_space, key, fragment):
    with pytest.raises(ConfigError) as err:
        QuantumModelConfig.from_dict({"mirror": PONG_MIRROR}, obs_space, action_space, prefix="model_config")
    assert err.value.key == f"model_config.{key}"
    assert fragment in str(err.value)


def test_a_yaml_experiment_checks_it_before_ray_starts():
    with pytest.raises(ConfigError) as err:
        load_experiment("configs/quantum_independent_pong_features.yaml",
                        {"model_config.mirror": {"observation_signs": [1, -1, 1], "action_permutation": PERM}})
    assert err.value.key.endswith("model_config.mirror.observation_signs")
    assert "mirror: null drops the reflection" in str(err.value)


def test_it_round_trips_and_is_off_by_default():
    cfg = QuantumModelConfig.from_dict({"mirror": PONG_MIRROR}, BOX5, gym.spaces.Discrete(3))
    assert cfg.mirror == MirrorConfig((1.0, -1.0, 1.0, -1.0, -1.0), (0, 2, 1))
    assert QuantumModelConfig.from_dict(cfg.to_dict(), BOX5, gym.spaces.Discrete(3)) == cfg
    assert QuantumModelConfig.from_dict({}, BOX5, gym.spaces.Discrete(3)).mirror is None


@pytest.mark.parametrize("extra", [{}, {"inverse_temperature": 2.5}, {"critic": "quantum"}, {"readout": "expval"}])
def test_logits_and_values_are_the_plain_modules_means_over_the_reflection(extra):
    """The same weights in a module without ``mirror``: logits ``0.5 (l(s) + l(m(s))[perm])``,
    values ``0.5 (V(s) + V(m(s)))``; so ``pi(a | m(s)) = pi(perm[a] | s)`` and ``V(m(s)) = V(s)``."""
    mirrored = _module(**extra)
    plain = _module(mirror=None, **extra)
    plain.load_state_dict(mirrored.state_dict())  # the signs are not state: the weights alone load
    obs = _obs(9)
    flipped = obs * torch.tensor(SIGNS, dtype=torch.float32)
    expected, expected_values = _means_over_the_reflection(plain, obs)
    with torch.no_grad():
        logits = mirrored.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        logits_of_mirror_images = mirrored.forward_exploration({Columns.OBS: flipped})[Columns.ACTION_DIST_INPUTS]
        values = mirrored.compute_values({Columns.OBS: obs})
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, expected_values, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_of_mirror_images, logits[:, PERM], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(logits[:, 1], logits[:, 2])  # not a policy that ignores the reflection
    torch.testing.assert_close(mirrored.compute_values({Columns.OBS: flipped}), values.detach(), rtol=1e-5, atol=1e-6)
    # forward_train: the logits of the B states, embeddings of the B states and their images (the
    # critic's input in PPO's loss), and those give the same values
    out = mirrored.forward_train({Columns.OBS: obs})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (9, 3) and out[Columns.EMBEDDINGS].shape == (18, 5)
    torch.testing.assert_close(mirrored.compute_values({Columns.OBS: obs}, out[Columns.EMBEDDINGS]), values, rtol=1e-5, atol=1e-6)


def test_the_fisher_matrix_is_the_symmetrised_policys():
    """Natural-gradient steps see the policy the module samples: per-state autograd through the
    mirrored module's own forward gives the same Fisher matrix."""
    module = _module(natural_gradient={"kl": 1e-3})
    obs = _obs(6, seed=4)
    params = [p for _, p, _ in natural_gradient.actor_parameters(module)]
    expected = 0
    for r in range(len(obs)):
        logits = module.forward_train({Columns.OBS: obs[r:r + 1]})[Columns.ACTION_DIST_INPUTS][0]
        jac = torch.stack([
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(logits[k], params, retain_graph=True)]) for k in range(3)
        ]).double()
        p = torch.softmax(logits.detach().double(), -1)
        expected = expected + jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
    expected = expected / len(obs)
    got = natural_gradient.fisher(module, module.embed({Columns.OBS: obs}, "test"))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_a_stacked_multi_module_runs_mirrored_modules_alone_with_the_same_results():
    spec = lambda mirror: RLModuleSpec(  # noqa: E731
        module_class=QuantumPPORLModule, observation_space=BOX5, action_space=gym.spaces.Discrete(3),
        model_config={"circuit": {"n_qubits": 5, "n_layers": 2}, "readout": "linear", "seed": 0, "mirror": mirror})
    multi = MultiRLModuleSpec(multi_rl_module_class=StackedQuantumMultiRLModule,
                              rl_module_specs={"a": spec(PONG_MIRROR), "b": spec(PONG_MIRROR), "c": spec(None), "d": spec(None)}).build()
    assert multi.stack_groups(["a", "b", "c", "d"]) == [["a"], ["b"], ["c", "d"]]
    batch = {mid: {Columns.OBS: _obs(4, seed=i)} for i, mid in enumerate("abcd")}
    out = multi.forward_train(batch)
    for mid in "abcd":
        alone = multi[mid].forward_train(batch[mid])
        torch.testing.assert_close(out[mid][Columns.ACTION_DIST_INPUTS], alone[Columns.ACTION_DIST_INPUTS])


def test_ppo_trains_mirrored_policies_with_natural_steps_and_the_runner_stays_equivariant(build_algo):
    """The shipped pong config (natural-gradient steps for the actor) with the reflection, one real
    PPO iteration: every trained part moves, and the env runner's synced module is still exactly
    equivariant (the signs are not state: they come from each module's own config)."""
    exp = load_experiment("configs/quantum_independent_pong_features.yaml",
                          tiny("quantum", **{"model_config.mirror": PONG_MIRROR, "model_config.natural_gradient": {"kl": 1e-3, "fisher_rows": 50}}))
    algo = build_algo(exp.algo_config)
    learner_module = algo.learner_group._learner.module["paddle_0"].unwrapped()
    before = {k: v.clone() for k, v in learner_module.state_dict().items()}
    result = algo.train()
    after = learner_module.state_dict()
    for name in ("actor.weights", "actor.input_scale", "actor_head.weight", "critic.0.weight"):
        assert not torch.equal(before[name], after[name]), name
    assert result["learners"]["paddle_0"]["quantum/actor_natural_step_kl"] > 0
    runner_module = algo.env_runner.module["paddle_0"]
    obs = _obs(5, seed=7)
    with torch.no_grad():
        logits = runner_module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        images = runner_module.forward_inference({Columns.OBS: obs * torch.tensor(SIGNS, dtype=torch.float32)})[Columns.ACTION_DIST_INPUTS]
        learner_logits = learner_module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(images, logits[:, PERM], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, learner_logits, rtol=1e-5, atol=1e-6)


def test_the_swap_takes_it_on_a_multi_agent_config_written_the_rllib_way(build_algo):
    """RLlib's usual multi-agent CartPole (``policies={"p0", "p1"}``, a mapping function, no module
    spec), quantum policies swapped in with CartPole's left-right reflection (x, velocity, angle and
    angular velocity all change sign; push left and push right swap): it trains, and the built
    modules are equivariant."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env import make_multi_agent
    from ray.tune.registry import register_env

    from rllib_quantum import with_quantum_policies

    register_env("rq_test_mirror_cartpole_x2", lambda cfg: make_multi_agent("CartPole-v1")({"num_agents": 2}))
    config = (
        PPOConfig()
        .environment("rq_test_mirror_cartpole_x2")
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *a, **k: f"p{aid}")
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    cartpole = {"observation_signs": [-1, -1, -1, -1], "action_permutation": [1, 0]}
    config = with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}, mirror=cartpole)
    algo = build_algo(config)
    result = algo.train()
    assert result["learners"]["p0"]["num_module_steps_trained"] > 0
    module = algo.env_runner.module["p1"]
    obs = torch.rand(6, 4) - 0.5
    with torch.no_grad():
        logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        images = module.forward_inference({Columns.OBS: -obs})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(images, logits[:, [1, 0]], rtol=1e-5, atol=1e-6)


def test_the_classical_module_is_rllibs_default_module_averaged_over_the_reflection():
    """``MirroredPPOTorchRLModule`` against RLlib's own default PPO module holding the same weights."""
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

    from rllib_quantum.modules import MirroredPPOTorchRLModule

    def build(cls, **extra):
        torch.manual_seed(0)
        return RLModuleSpec(module_class=cls, observation_space=BOX5, action_space=gym.spaces.Discrete(3),
                            model_config={"fcnet_hiddens": [16, 16], "vf_share_layers": False, **extra}).build()

    mirrored = build(MirroredPPOTorchRLModule, mirror=PONG_MIRROR, inverse_temperature=1.5)
    plain = build(DefaultPPOTorchRLModule)
    plain.load_state_dict({k: v for k, v in mirrored.state_dict().items() if k != "inverse_temperature"})
    obs = _obs(7)
    expected, expected_values = _means_over_the_reflection(plain, obs)
    expected = 1.5 * expected  # the inverse temperature
    with torch.no_grad():
        torch.testing.assert_close(mirrored.forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS], expected)
        torch.testing.assert_close(mirrored.compute_values({Columns.OBS: obs}), expected_values)
    out = mirrored.forward_train({Columns.OBS: obs})
    torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS], expected)
    torch.testing.assert_close(mirrored.compute_values({Columns.OBS: obs}, out[Columns.EMBEDDINGS]), expected_values)


def test_the_classical_baseline_takes_the_same_key_in_a_ppo_run(build_algo):
    from rllib_quantum.modules import MirroredPPOTorchRLModule

    exp = load_experiment("configs/classical_independent_pong_features.yaml", tiny("classical", **{"model_config.mirror": PONG_MIRROR}))
    algo = build_algo(exp.algo_config)
    module = algo.learner_group._learner.module["paddle_1"]
    assert isinstance(module, MirroredPPOTorchRLModule)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    assert algo.train()["learners"]["paddle_1"]["num_module_steps_trained"] > 0
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())
    runner = algo.env_runner.module["paddle_1"]
    obs = _obs(5, seed=3)
    with torch.no_grad():
        logits = runner.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        images = runner.forward_inference({Columns.OBS: obs * torch.tensor(SIGNS, dtype=torch.float32)})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(images, logits[:, PERM], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, key, fragment",
    [
        ({"model_config.mirror": {"observation_signs": [1, -1], "action_permutation": PERM}}, "mirror.observation_signs", "(5), got 2"),
        ({"model_config.mirror": {**PONG_MIRROR, "action_permutation": [2, 0, 1]}}, "mirror.action_permutation", "its own inverse"),
        ({"model_config.mirror": PONG_MIRROR, "model_config.use_lstm": True}, "mirror", "use_lstm"),
    ],
)
def test_the_classical_key_is_checked_before_ray_starts(overrides, key, fragment):
    with pytest.raises(ConfigError) as err:
        load_experiment("configs/classical_independent_pong_features.yaml", overrides)
    assert err.value.key.endswith(key)
    assert fragment in str(err.value)
