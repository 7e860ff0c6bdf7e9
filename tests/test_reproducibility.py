"""A seeded experiment repeats: same initial weights, same first-iteration episodes, same weights
after training (local env runner, as README "Reproducibility" describes); module init depends on
neither the process (hash randomisation) nor the order RLlib builds the modules in."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rllib_quantum import ConfigError, load_experiment, reproducible_runtime_env
from rllib_quantum.modules.quantum_ppo_rlm import init_seed
from rllib_quantum.strategies import module_spec
from tests._tiny import tiny

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "quantum": "configs/quantum_independent_pong_features.yaml",
    "classical": "configs/classical_independent_pong_features.yaml",
}
EPISODE_STATS = ("episode_return_mean", "episode_len_mean", "num_episodes", "agent_episode_returns_mean",
                 "num_env_steps_sampled", "num_agent_steps_sampled")


def _learner_state(algo) -> dict:
    return algo.learner_group.get_state(components="learner/rl_module")["learner"]["rl_module"]


def _runner_state(algo) -> dict:
    return algo.env_runner.module.get_state()


def _assert_equal_states(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b), what
    for mid in a:
        assert set(a[mid]) == set(b[mid]), (what, mid)
        for key in a[mid]:
            assert torch.equal(torch.as_tensor(a[mid][key]), torch.as_tensor(b[mid][key])), f"{what}: {mid}/{key}"


def _run(kind: str, build_algo):
    exp = load_experiment(CONFIGS[kind], tiny(kind, seed=7))
    assert exp.algo_config.num_env_runners == 0 and exp.algo_config.seed == 7
    algo = build_algo(exp.algo_config)
    initial = _learner_state(algo), _runner_state(algo)
    result = algo.train()
    stats = {k: result["env_runners"][k] for k in EPISODE_STATS}
    return initial, stats, _learner_state(algo)


@pytest.mark.parametrize("kind", ["quantum", "classical"])
def test_two_seeded_builds_repeat_exactly(kind, build_algo):
    (learner0, runner0), stats0, trained0 = _run(kind, build_algo)
    (learner1, runner1), stats1, trained1 = _run(kind, build_algo)
    _assert_equal_states(learner0, learner1, "initial learner weights")
    _assert_equal_states(runner0, runner1, "initial env runner weights")
    assert stats0["num_episodes"] >= 1 and stats0 == stats1
    _assert_equal_states(trained0, trained1, "weights after one iteration")
    assert any(not torch.equal(torch.as_tensor(trained0[m][k]), torch.as_tensor(learner0[m][k]))
               for m in trained0 for k in trained0[m])  # it did train


def test_quantum_module_init_depends_on_seed_and_module_id_only():
    exp = load_experiment(CONFIGS["quantum"], tiny("quantum", seed=3))
    spec = exp.algo_config.rl_module_spec.rl_module_specs["paddle_1"]
    assert spec.model_config["seed"] == 3 and spec.model_config["module_id"] == "paddle_1"

    def build(module_id, seed):
        torch.rand(17)  # whatever drew from torch's global RNG before does not matter
        return module_spec("quantum", exp.spec["model_config"], spec.observation_space, spec.action_space,
                           module_id=module_id, seed=seed).build().state_dict()

    alone = build("paddle_1", 3)
    in_experiment = exp.build_modules()["paddle_1"].state_dict()  # built after paddle_0
    assert all(torch.equal(alone[k], in_experiment[k]) for k in alone)
    other_module, other_seed = build("paddle_0", 3), build("paddle_1", 4)
    assert not torch.equal(alone["actor.weights"], other_module["actor.weights"])
    assert not torch.equal(alone["actor.weights"], other_seed["actor.weights"])
    before = torch.random.get_rng_state()
    spec.build()
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is left as it was
    assert init_seed(3, "paddle_1") != init_seed(3, "paddle_0")


_DIGEST = """
import hashlib, torch
from rllib_quantum import load_experiment
exp = load_experiment("configs/quantum_independent_pong_features.yaml", {"seed": 0})
from rllib_quantum.envs import ENV_CREATORS
env = ENV_CREATORS[exp.plan.env](exp.spec["env_config"])
spec = exp.algo_config.get_multi_rl_module_spec(env=env)  # RLlib's merge of `policies` and our specs
print(list(exp.algo_config.policies), list(spec.rl_module_specs))
modules = spec.build()
digest = hashlib.sha256()
for mid in sorted(modules.keys()):
    for key, value in sorted(modules[mid].state_dict().items()):
        digest.update(f"{mid}/{key}".encode() + value.numpy().tobytes())
print(digest.hexdigest())
"""


def test_initial_weights_do_not_depend_on_the_python_hash_seed():
    """The bug behind 'reruns with fixed seeds differed': ``policies`` was a set, whose order (and
    so RLlib's module build order, hence which module drew which random numbers) changed with
    each process's hash seed."""
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "RAY_AUTH_MODE": "disabled"}
        proc = subprocess.run([sys.executable, "-c", _DIGEST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(proc.stdout.strip().splitlines()[-2:])
    assert outs[0] == outs[1]
    assert outs[0][0] == "['paddle_0', 'paddle_1'] ['paddle_0', 'paddle_1']"


def test_every_ray_worker_gets_one_hash_seed(ray_session):
    """RLlib iterates sets of agent ids (so which module samples first, and the batch order, follow
    the string-hash order): the session's workers, like the CLI's and the benchmarks', all hash as a
    fresh ``PYTHONHASHSEED=<seed>`` Python does."""
    seed = reproducible_runtime_env()["env_vars"]["PYTHONHASHSEED"]

    @ray_session.remote
    def worker_hash():
        return hash("paddle_0"), hash("paddle_1"), os.environ.get("PYTHONHASHSEED")

    fresh = subprocess.run([sys.executable, "-c", "print(hash('paddle_0'), hash('paddle_1'))"],
                           env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                           timeout=60)
    expected = tuple(int(v) for v in fresh.stdout.split())
    assert [ray_session.get(worker_hash.remote()) for _ in range(3)] == [(*expected, seed)] * 3


def test_reproducible_runtime_env_keeps_yours_and_checks_the_seed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    mine = {"pip": ["rich"], "env_vars": {"OMP_NUM_THREADS": "1"}}
    env = reproducible_runtime_env(mine)
    assert env == {"pip": ["rich"], "env_vars": {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}}
    assert mine == {"pip": ["rich"], "env_vars": {"OMP_NUM_THREADS": "1"}}  # not changed in place
    assert reproducible_runtime_env(hash_seed=12)["env_vars"]["PYTHONHASHSEED"] == "12"
    yours = reproducible_runtime_env({"env_vars": {"PYTHONHASHSEED": "5"}}, hash_seed=12)
    assert yours["env_vars"]["PYTHONHASHSEED"] == "5"
    monkeypatch.setenv("PYTHONHASHSEED", "random")  # the user's explicit choice passes through
    assert reproducible_runtime_env()["env_vars"]["PYTHONHASHSEED"] == "random"
    for bad, key in ((["pip"], "runtime_env"), ({"env_vars": ["A=1"]}, "runtime_env.env_vars"),
                     ({"env_vars": {"N": 1}}, "runtime_env.env_vars.N"),
                     ({"env_vars": {"PYTHONHASHSEED": "-1"}}, "runtime_env.env_vars.PYTHONHASHSEED")):
        with pytest.raises(ConfigError) as err:
            reproducible_runtime_env(bad)
        assert err.value.key == key
    with pytest.raises(ConfigError, match=r"hash_seed: must be an int in 0\.\.4294967295 or 'random'"):
        reproducible_runtime_env(hash_seed=2**32)
