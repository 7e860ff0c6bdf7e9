"""with_quantum_policies on configs written RLlib-style (not by this package)."""

import functools
import pickle

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum.envs import COOPERATIVE_PONG, register_envs
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules import QuantumPPORLModule
from rllib_quantum.swap import with_quantum_policies

POLICIES = ("paddle_0", "paddle_1")


def mapping(agent_id, episode, **kwargs):
    return agent_id


def policies_only_config():
    """The most common RLlib multi-agent style: policies and a mapping, no rl_module_spec."""
    register_envs()
    return (
        PPOConfig()
        .environment(COOPERATIVE_PONG, env_config={"obs": "features", "max_cycles": 100})
        .env_runners(num_env_runners=0)
        .multi_agent(policies=set(POLICIES), policy_mapping_fn=mapping)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )


def rllib_style_config():
    """Like RLlib's rllib/examples/multi_agent/pettingzoo_independent_learning.py: the same plus a
    MultiRLModuleSpec of RLModuleSpec()s, a learning rate and a discount."""
    return (
        policies_only_config()
        .training(lr=0.0007, gamma=0.95)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={p: RLModuleSpec() for p in POLICIES}))
    )


def test_swap_keeps_everything_else_and_trains(build_algo):
    original = rllib_style_config()
    swapped = with_quantum_policies(original, modules=["paddle_1"], circuit={"n_qubits": 5, "n_layers": 1})
    assert swapped is not original
    for key in ("lr", "train_batch_size_per_learner", "minibatch_size", "num_epochs", "gamma", "env", "env_config",
                "num_env_runners", "policies"):
        assert getattr(swapped, key) == getattr(original, key), key
    assert swapped.policy_mapping_fn is mapping
    specs = swapped.rl_module_spec.rl_module_specs
    assert specs["paddle_1"].module_class is QuantumPPORLModule
    assert specs["paddle_1"].model_config["circuit"]["n_layers"] == 1
    assert specs["paddle_0"].module_class is not QuantumPPORLModule  # untouched: RLlib's default
    # The original is unchanged.
    assert all(s.module_class is not QuantumPPORLModule for s in original.rl_module_spec.rl_module_specs.values())

    algo = build_algo(swapped)
    result = algo.train()
    assert isinstance(algo.get_module("paddle_1"), QuantumPPORLModule)
    assert not isinstance(algo.get_module("paddle_0"), QuantumPPORLModule)
    assert algo.get_module("paddle_1").observation_space.shape == (5,)  # spaces inferred by RLlib as before
    assert set(result["learners"]) >= set(POLICIES)


def test_swap_on_policies_and_mapping_only_the_most_common_style(build_algo):
    """`.multi_agent(policies=..., policy_mapping_fn=...)` and no rl_module_spec at all."""
    config = policies_only_config()
    swapped = with_quantum_policies(config, circuit={"n_qubits": 5, "n_layers": 1})
    assert swapped.learner_class.__name__ == "QuantumPPOTorchLearner"
    algo = build_algo(swapped)
    result = algo.train()
    for mid in POLICIES:
        assert isinstance(algo.get_module(mid), QuantumPPORLModule)
        assert result["learners"][mid]["num_module_steps_trained"] > 0
        assert result["learners"][mid]["quantum/actor_weights_grad_norm"] > 0


def test_partial_swap_on_policies_and_mapping_only(build_algo):
    """`modules=[...]` on a config with no rl_module_spec: the other modules stay RLlib's default
    (each with its own agent's spaces), and both train."""
    config = policies_only_config()
    swapped = with_quantum_policies(config, modules=["paddle_0"], circuit={"n_qubits": 5, "n_layers": 1})
    assert sorted(swapped.rl_module_spec.rl_module_specs) == sorted(POLICIES)
    algo = build_algo(swapped)
    result = algo.train()
    assert isinstance(algo.get_module("paddle_0"), QuantumPPORLModule)
    classical = algo.get_module("paddle_1")
    assert not isinstance(classical, QuantumPPORLModule) and classical.observation_space.shape == (5,)
    for mid in POLICIES:
        assert result["learners"][mid]["num_module_steps_trained"] > 0


def test_swap_on_rllibs_own_multi_agent_example_env(build_algo):
    """RLlib's multi_agent_cartpole.py style: the env class given directly, integer agent ids mapped
    onto fewer policies (`f"p{agent_id % 2}"`), and one policy left out of `policies_to_train`."""
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    config = (
        PPOConfig()
        .environment(MultiAgentCartPole, env_config={"num_agents": 4})
        .env_runners(num_env_runners=0)
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id % 2}",
                     policies_to_train=["p0"])
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1})
    algo = build_algo(swapped)
    before = {mid: algo.get_module(mid).get_state() for mid in ("p0", "p1")}
    result = algo.train()
    for mid in ("p0", "p1"):
        assert isinstance(algo.get_module(mid), QuantumPPORLModule)
        assert algo.get_module(mid).observation_space.shape == (4,)
    assert result["learners"]["p0"]["num_module_steps_trained"] > 0  # agents 0 and 2
    assert "num_module_steps_trained" not in result["learners"].get("p1", {})  # not trained: its weights stay
    after = {mid: algo.get_module(mid).get_state() for mid in ("p0", "p1")}
    assert all(np.array_equal(before["p1"][k], after["p1"][k]) for k in before["p1"])
    assert not all(np.array_equal(before["p0"][k], after["p0"][k]) for k in before["p0"])


def test_swap_keeps_per_module_overrides_list_policies_and_default_model_config(build_algo):
    """Other everyday RLlib styles: `policies` as a list, RLlib's `DefaultModelConfig` in
    `.rl_module(model_config=...)`, and `algorithm_config_overrides_per_module` (one module with
    its own lr): the swapped modules train with each module's own lr, as RLlib's learner would."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    config = (
        PPOConfig()
        .environment(MultiAgentCartPole, env_config={"num_agents": 2})
        .env_runners(num_env_runners=0)
        .multi_agent(policies=["p0", "p1"], policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}",
                     algorithm_config_overrides_per_module={"p0": PPOConfig.overrides(lr=0.0001)})
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[16]))
        .training(lr=0.003, train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1})
    result = build_algo(swapped).train()
    lrs = {mid: result["learners"][mid]["default_optimizer_learning_rate"] for mid in ("p0", "p1")}
    assert lrs == pytest.approx({"p0": 0.0001, "p1": 0.003})
    for mid in ("p0", "p1"):
        assert result["learners"][mid]["num_module_steps_trained"] > 0
        assert result["learners"][mid]["quantum/actor_weights_grad_norm"] > 0


RESTORE_MODULE = """
import sys, torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
module = RLModule.from_checkpoint(sys.argv[1])
obs = torch.linspace(-1, 1, 12).reshape(3, 4)
logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
print(type(module).__name__, repr(logits.tolist()))
"""


def test_swapped_config_trains_through_tune_and_its_modules_restore_in_a_fresh_process(ray_session, storage, sandbox):
    """How RLlib users run experiments: the swapped config as Tune's ``param_space`` (``Tuner("PPO",
    ...)``, which pickles it, lambda mapping included, to the trial); its checkpoint restored here
    with ``Algorithm.from_checkpoint`` and one module in another Python process with
    ``RLModule.from_checkpoint`` (no Ray there), both giving the trained module's logits."""
    import torch
    from ray import tune
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModule
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    from _helpers import run_script

    config = (
        PPOConfig()
        .environment(MultiAgentCartPole, env_config={"num_agents": 2})
        .env_runners(num_env_runners=0)
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1})
    tuner = tune.Tuner("PPO", param_space=swapped, run_config=tune.RunConfig(
        stop={"training_iteration": 1}, storage_path=storage, verbose=0,
        checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True)))
    [result] = tuner.fit()
    assert result.error is None, result.error
    # the quantum learner trained both modules (its circuit diagnostics are logged per module)
    for mid in ("p0", "p1"):
        assert result.metrics["learners"][mid]["num_module_steps_trained"] > 0
        assert "quantum/actor_weights_grad_norm" in result.metrics["learners"][mid]

    obs = {Columns.OBS: torch.linspace(-1, 1, 12).reshape(3, 4)}  # as RESTORE_MODULE feeds it
    path = f"{result.checkpoint.path}/learner_group/learner/rl_module/p0"
    module = RLModule.from_checkpoint(path)
    assert isinstance(module, QuantumPPORLModule)
    with torch.no_grad():
        expected = module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
    algo = Algorithm.from_checkpoint(result.checkpoint.path)  # the whole algorithm, in this process
    try:
        with torch.no_grad():
            assert torch.equal(algo.get_module("p0").forward_inference(obs)[Columns.ACTION_DIST_INPUTS], expected)
    finally:
        algo.stop()
    script = sandbox / "restore_module.py"  # one module, in a process without Ray
    script.write_text(RESTORE_MODULE)
    out = run_script(str(script), [path], sandbox, timeout=180)
    assert f"QuantumPPORLModule {expected.tolist()!r}" in out, out[-2000:]


def test_swap_on_a_pettingzoo_env_whose_agents_die_mid_episode(build_algo):
    """PettingZoo's knights_archers_zombies through RLlib's ParallelPettingZooEnv: agents leave the
    episode when killed, observations are a (27, 5) table of entities (a 2-D Box that is not an
    image: flattened), two policies by agent type."""
    from pettingzoo.butterfly import knights_archers_zombies_v11
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    register_env("rllib_quantum_test/kaz", lambda cfg: ParallelPettingZooEnv(knights_archers_zombies_v11.parallel_env(max_cycles=50)))
    config = (
        PPOConfig()
        .environment("rllib_quantum_test/kaz")
        .env_runners(num_env_runners=0)
        .multi_agent(policies={"archer", "knight"},
                     policy_mapping_fn=lambda aid, *args, **kwargs: "archer" if aid.startswith("archer") else "knight")
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 5, "n_layers": 1})
    result = build_algo(swapped).train()
    for mid in ("archer", "knight"):
        assert result["learners"][mid]["num_module_steps_trained"] > 0
        assert np.isfinite(result["learners"][mid]["total_loss"])


def test_swap_on_agents_with_different_spaces_one_policy_each(build_algo):
    """mpe2 simple_tag with continuous actions: three adversaries (16 observations) and one good
    agent (14), each its own policy (a dict of PolicySpec()s, RLlib's per-agent style). The stacked
    module groups the adversaries into one circuit call and leaves the good agent on its own; all
    four train, with Gaussian heads on the Box actions."""
    from mpe2 import simple_tag_v3
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.rllib.policy.policy import PolicySpec
    from ray.tune.registry import register_env

    def make(config):
        return ParallelPettingZooEnv(simple_tag_v3.parallel_env(max_cycles=25, continuous_actions=True))

    register_env("rllib_quantum_test/simple_tag", make)
    agents = make({}).par_env.possible_agents
    config = (
        PPOConfig()
        .environment("rllib_quantum_test/simple_tag")
        .env_runners(num_env_runners=0)
        .multi_agent(policies={aid: PolicySpec() for aid in agents}, policy_mapping_fn=lambda aid, *args, **kwargs: aid)
        .training(train_batch_size_per_learner=100, minibatch_size=50, num_epochs=1)
    )
    swapped = with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1})
    algo = build_algo(swapped)
    result = algo.train()
    multi = algo.learner_group._learner.module
    adversaries = [a for a in agents if a.startswith("adversary")]
    assert sorted(map(sorted, multi.stack_groups(list(agents)))) == sorted([sorted(adversaries), ["agent_0"]])
    for aid in agents:
        module = algo.get_module(aid)
        assert isinstance(module, QuantumPPORLModule) and module.log_std is not None
        assert module.observation_space.shape == ((16,) if aid in adversaries else (14,))
        assert result["learners"][aid]["num_module_steps_trained"] > 0
        assert np.isfinite(result["learners"][aid]["total_loss"])


class _TextObs(gym.Env):
    observation_space = gym.spaces.Text(5)
    action_space = gym.spaces.Discrete(2)


def test_options_that_do_not_fit_the_envs_spaces_fail_in_the_swap():
    """Spaces left to RLlib: the swap builds one env here and each quantum module on its spaces,
    so misfits fail before any Ray worker starts, keyed by the module (no Ray in this test)."""
    from ray.tune.registry import register_env

    with pytest.raises(ConfigError, match=r"^model_config\['default_policy'\]\.readout: 'expval' reads one wire per logit") as info:
        with_quantum_policies(PPOConfig().environment("CartPole-v1"), circuit={"n_qubits": 1}, readout="expval")
    assert info.value.key == "model_config['default_policy'].readout"
    pong = policies_only_config()
    with pytest.raises(ConfigError, match=r"^model_config\['paddle_[01]'\]\.readout: 'expval' .* the action space needs 3 logits"):
        with_quantum_policies(pong, circuit={"n_qubits": 2, "n_layers": 1}, readout="expval")
    with pytest.raises(ConfigError, match=r"^model_config\['paddle_[01]'\]\.encoder: 'cnn' needs an image observation"):
        with_quantum_policies(pong, encoder="cnn", circuit={"n_qubits": 5, "n_layers": 1})
    register_env("rllib_quantum_test/text_obs", lambda config: _TextObs())
    with pytest.raises(ConfigError, match=r"^modules\['default_policy'\]\.observation_space: must be one of Box .*got Text"):
        with_quantum_policies(PPOConfig().environment("rllib_quantum_test/text_obs"))
    # An env that cannot be built here leaves the check to RLlib (no error from the swap itself).
    register_env("rllib_quantum_test/driver_cannot_build", lambda config: (_ for _ in ()).throw(RuntimeError("needs a GPU")))
    swapped = with_quantum_policies(PPOConfig().environment("rllib_quantum_test/driver_cannot_build"), circuit={"n_qubits": 1}, readout="expval")
    assert swapped.rl_module_spec.module_class is QuantumPPORLModule


def test_swap_all_modules_and_single_agent():
    swapped = with_quantum_policies(rllib_style_config(), circuit={"n_qubits": 5, "n_layers": 1})
    assert all(s.module_class is QuantumPPORLModule for s in swapped.rl_module_spec.rl_module_specs.values())
    single = PPOConfig().environment("CartPole-v1").training(lr=0.01)
    q = with_quantum_policies(single, circuit={"n_qubits": 4, "n_layers": 1})
    assert q.lr == 0.01 and q.rl_module_spec.module_class is QuantumPPORLModule


def test_swap_errors():
    """Every error names the argument (and, where the module's spaces matter, the module id)."""
    config = rllib_style_config()
    with pytest.raises(ConfigError, match=r"^modules: unknown module id\(s\) \['paddle_9'\]; known modules: \['paddle_0', 'paddle_1'\]$") as info:
        with_quantum_policies(config, modules=["paddle_9"])
    assert info.value.key == "modules"
    with pytest.raises(ConfigError, match=r"^modules: must not be empty") as info:
        with_quantum_policies(config, modules=[])
    assert info.value.key == "modules"
    with pytest.raises(ConfigError, match=r"^model_config\.circuit: unknown key\(s\) \['n_qubit'\]; allowed: \['n_qubits'") as info:
        with_quantum_policies(config, circuit={"n_qubit": 5})
    assert info.value.key == "model_config.circuit"
    with pytest.raises(ConfigError, match=r"^model_config\.circuit\.n_qubits: must be an int in 1\.\.24, got 25 \(.*0\.25 GiB") as info:
        with_quantum_policies(config, circuit={"n_qubits": 25})
    assert info.value.key == "model_config.circuit.n_qubits"
    with pytest.raises(ConfigError, match=r"^model_config: unknown key\(s\) \['hiddens'\]") as info:
        with_quantum_policies(config, hiddens=[64])
    assert info.value.key == "model_config"
    from ray.rllib.algorithms.dqn import DQNConfig

    with pytest.raises(ConfigError, match=r"^config: must be a PPOConfig \(with_quantum_policies supports PPO only.*got DQNConfig$") as info:
        with_quantum_policies(DQNConfig())
    assert info.value.key == "config"
    assert isinstance(info.value, TypeError)  # code written against the old TypeError keeps working
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.key, str(clone)) == ("config", str(info.value))


def test_swap_errors_that_depend_on_a_module_name_it():
    """With spaces on a module's spec, the fit is checked per module and the key names the module."""
    obs, act = gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(7)
    config = rllib_style_config().rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
        "paddle_0": RLModuleSpec(observation_space=obs, action_space=act),
        "paddle_1": RLModuleSpec(observation_space=obs, action_space=gym.spaces.Box(-1, 1, (2, 2))),
    }))
    with pytest.raises(ConfigError, match=r"^model_config\['paddle_0'\]\.readout: 'expval' reads one wire per logit") as info:
        with_quantum_policies(config, modules=["paddle_0"], readout="expval", circuit={"n_qubits": 5})
    assert info.value.key == "model_config['paddle_0'].readout"
    with pytest.raises(ConfigError, match=r"^modules\['paddle_1'\]\.action_space: must be Discrete, \(1-D\) MultiDiscrete or a 1-D Box") as info:
        with_quantum_policies(config, modules=["paddle_1"])
    assert info.value.key == "modules['paddle_1'].action_space"


def test_an_old_stack_mapping_signature_fails_in_the_swap_naming_policy_mapping_fn():
    """The old API stack's ``(agent_id, episode, worker, **kwargs)`` makes every env runner of the
    new stack raise a TypeError (RLlib passes no worker); the swap says so before Ray starts.
    Signatures the new stack can call pass: defaults, *args, **kwargs, a bare lambda."""
    def old_style(agent_id, episode, worker, **kwargs):
        return agent_id

    with pytest.raises(ConfigError, match=r"^policy_mapping_fn: RLlib's new API stack calls it as fn\(agent_id, episode\); "
                       r".*old_style\(agent_id, episode, worker, \*\*kwargs\).*missing a required argument: 'worker'.*worker=None") as info:
        with_quantum_policies(policies_only_config().multi_agent(policy_mapping_fn=old_style))
    assert info.value.key == "policy_mapping_fn"
    with pytest.raises(ConfigError, match=r"^policy_mapping_fn: .*partial\(agent_id, episode, worker, \*\*kwargs\)"):  # no __qualname__
        with_quantum_policies(policies_only_config().multi_agent(policy_mapping_fn=functools.partial(old_style)))
    for fine in (lambda agent_id, episode, worker=None, **kwargs: agent_id, lambda aid, *args, **kw: aid,
                 lambda agent_id, episode: agent_id):
        with_quantum_policies(policies_only_config().multi_agent(policy_mapping_fn=fine))


def test_swap_on_a_pettingzoo_classic_game_with_legacy_policy_tuples(build_algo):
    """PettingZoo's connect four through RLlib's AEC wrapper (`PettingZooEnv`: turn-based, a Dict
    observation with an action mask, a 6x7x2 int8 board), `policies` written the old way as
    `(policy_class, obs_space, act_space, config)` tuples: each player's module reads the board
    as an image and never plays a full column (the env below raises on such a move)."""
    from pettingzoo.classic import connect_four_v3
    from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv
    from ray.tune.registry import register_env

    class MaskCheckedEnv(PettingZooEnv):
        def reset(self, *args, **kwargs):
            obs, info = super().reset(*args, **kwargs)
            self.last_obs = dict(obs)
            return obs, info

        def step(self, action):
            for agent, move in action.items():
                if not self.last_obs[agent]["action_mask"][move]:
                    raise AssertionError(f"{agent} played the full column {move}")
            obs, *rest = super().step(action)
            self.last_obs.update(obs)
            return (obs, *rest)

    register_env("rq_test_connect_four", lambda cfg: MaskCheckedEnv(connect_four_v3.env()))
    probe = PettingZooEnv(connect_four_v3.env())
    obs_space, act_space = probe.observation_space["player_0"], probe.action_space["player_0"]
    config = (
        PPOConfig()
        .environment("rq_test_connect_four")
        .env_runners(num_env_runners=0)
        .multi_agent(policies={p: (None, obs_space, act_space, {}) for p in ("player_0", "player_1")},
                     policy_mapping_fn=lambda agent_id, episode, **kw: agent_id)
        .training(train_batch_size_per_learner=400, minibatch_size=200, num_epochs=1)
    )
    algo = build_algo(with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}))
    result = algo.train()  # 400 moves, several full columns among them: each one refused by the mask
    for mid in ("player_0", "player_1"):
        module = algo.get_module(mid)
        assert isinstance(module, QuantumPPORLModule) and module.mask_keys == ("observation",)
        assert result["learners"][mid]["num_module_steps_trained"] > 0
    assert result["env_runners"]["num_episodes"] > 5


def _prev_action_and_reward_connector(multi_agent):
    """A user's env-to-module connector that widens observations: the previous action and reward
    beside them, flattened (CartPole's 4 numbers become 7), as RLlib's own examples write it."""
    from ray.rllib.connectors.env_to_module import FlattenObservations, PrevActionsPrevRewards

    return lambda env, spaces=None, device=None: [
        PrevActionsPrevRewards(multi_agent=multi_agent, n_prev_rewards=1, n_prev_actions=1),
        FlattenObservations(multi_agent=multi_agent),
    ]


def cartpole_configs_with_a_widening_connector():
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    multi = (
        PPOConfig()
        .environment(MultiAgentCartPole, env_config={"num_agents": 2})
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
        .env_runners(num_env_runners=0, env_to_module_connector=_prev_action_and_reward_connector(True))
    )
    single = PPOConfig().environment("CartPole-v1").env_runners(
        num_env_runners=0, env_to_module_connector=_prev_action_and_reward_connector(False))
    return {"p0": multi, "default_policy": single}  # the module the multi-agent error names: the first in sorted order


def test_the_swap_checks_the_spaces_a_users_env_to_module_connector_makes():
    """The modules see the connector's output (7 numbers), not the env's 4: a circuit of 4 wires
    without an encoder fails in the swap, naming the module, as it would in every env runner
    (before this check: RLlib's IndexError after the workers started)."""
    for module_id, config in cartpole_configs_with_a_widening_connector().items():
        with pytest.raises(ConfigError, match=rf"^model_config\['{module_id}'\]\.encoder: 'none' needs a vector observation "
                           r"of at most n_qubits=4 numbers, got shape \(7,\)"):
            with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}, encoder="none")
        with_quantum_policies(config, circuit={"n_qubits": 7, "n_layers": 1}, encoder="none")  # fits the 7


def test_swap_trains_behind_a_users_env_to_module_connector(build_algo):
    config = cartpole_configs_with_a_widening_connector()["p0"].training(
        train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    algo = build_algo(with_quantum_policies(config, circuit={"n_qubits": 4, "n_layers": 1}))
    result = algo.train()
    for mid in ("p0", "p1"):
        module = algo.get_module(mid)
        assert isinstance(module, QuantumPPORLModule) and module.observation_space.shape == (7,)
        assert result["learners"][mid]["num_module_steps_trained"] > 0


def test_swap_beside_recurrent_classical_modules(build_algo):
    """`.rl_module(model_config=DefaultModelConfig(use_lstm=True))`, RLlib's way to make every
    default module an LSTM: RLlib merges it into the quantum module's model_config too, which
    tolerates it there (only where a user writes a quantum module's own options is use_lstm
    refused): p0 becomes a feed-forward quantum module, p1 stays RLlib's recurrent one, both train."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    config = (
        PPOConfig()
        .environment(MultiAgentCartPole, env_config={"num_agents": 2})
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
        .rl_module(model_config=DefaultModelConfig(use_lstm=True, max_seq_len=20, lstm_cell_size=16))
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    algo = build_algo(with_quantum_policies(config, modules=["p0"], circuit={"n_qubits": 4, "n_layers": 1}))
    result = algo.train()
    quantum, recurrent = algo.get_module("p0"), algo.get_module("p1")
    assert isinstance(quantum, QuantumPPORLModule) and not quantum.is_stateful()
    assert not isinstance(recurrent, QuantumPPORLModule) and recurrent.is_stateful()
    for mid in ("p0", "p1"):
        assert result["learners"][mid]["num_module_steps_trained"] > 0
    with pytest.raises(ConfigError, match=r"^model_config\.use_lstm: .*quantum modules are feed-forward"):
        with_quantum_policies(config, modules=["p0"], use_lstm=True)


def test_learner_read_options_with_a_users_own_learner_class_fail_in_the_swap():
    """Per-group lrs, natural-gradient steps and an inverse-temperature schedule are carried out by
    QuantumPPOTorchLearner; a learner class of the user's own that does not derive from it would
    ignore them without a word, so the swap refuses them, naming the key and the class. A learner
    derived from QuantumPPOTorchLearner takes them, and so does any learner with the defaults."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from rllib_quantum.learners import QuantumPPOTorchLearner

    class OwnLearner(PPOTorchLearner):
        pass

    class DerivedLearner(QuantumPPOTorchLearner):
        pass

    circuit = {"n_qubits": 4, "n_layers": 1}
    asks = {"natural_gradient": {"kl": 1e-4}, "lr_multipliers": {"circuit": 2.0},
            "inverse_temperature": [[0, 1.0], [1000, 3.0]]}
    own = PPOConfig().environment("CartPole-v1").learners(learner_class=OwnLearner)
    for key, value in asks.items():
        with pytest.raises(ConfigError, match=rf"^model_config\.{key}: is carried out by rllib_quantum\.learners\.QuantumPPOTorchLearner, "
                           r"and this config's learner_class .*OwnLearner does not derive from it") as info:
            with_quantum_policies(own, circuit=circuit, **{key: value})
        assert info.value.key == f"model_config.{key}"
        derived = PPOConfig().environment("CartPole-v1").learners(learner_class=DerivedLearner)
        assert with_quantum_policies(derived, circuit=circuit, **{key: value})._learner_class is DerivedLearner
    with_quantum_policies(own, circuit=circuit, inverse_temperature=2.0, lr_multipliers={"circuit": 1.0})  # the module's own / defaults


def test_tune_search_spaces_in_the_quantum_options_fail_in_the_swap_and_the_advised_trainable_works(ray_session, storage):
    """Tune resolves `param_space`, not values inside the modules' specs, so a search space among
    the swap's keywords would reach the modules unresolved: refused, keyed by its path, saying what
    works. What works, as the message says: with_quantum_policies inside a function trainable."""
    from ray import tune

    base = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0).training(
        train_batch_size_per_learner=100, minibatch_size=50, num_epochs=1)
    for options, key in (({"circuit": {"n_qubits": 4, "n_layers": tune.grid_search([1, 2])}}, r"model_config\.circuit\.n_layers"),
                         ({"critic_hiddens": [tune.randint(8, 64)]}, r"model_config\.critic_hiddens\[0\]")):
        with pytest.raises(ConfigError, match=rf"^{key}: is a Tune search space \(.*\); .*inside a function trainable"):
            with_quantum_policies(base, **options)

    def trainable(params):
        algo = with_quantum_policies(base, circuit={"n_qubits": 4, "n_layers": params["n_layers"]}).build_algo()
        try:
            result = algo.train()
            module = algo.get_module()
            tune.report({"n_layers": module.actor.spec.n_layers,
                         "trained": result["learners"]["default_policy"]["num_module_steps_trained"]})
        finally:
            algo.stop()

    results = tune.Tuner(trainable, param_space={"n_layers": tune.grid_search([1, 2])},
                         run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    assert not results.errors
    assert sorted(r.metrics["n_layers"] for r in results) == [1, 2]
    assert all(r.metrics["trained"] > 0 for r in results)
