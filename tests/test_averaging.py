"""ParameterAveragingCallback on real Ray: values equal on learners and every env runner."""

import pickle
import re

import numpy as np
import pytest

from rllib_quantum.callbacks import ParameterAveragingCallback, averaging_callback, validate_averaging_options
from rllib_quantum.callbacks.selection import round_weights, weighted_mean
from rllib_quantum.config import load_experiment
from rllib_quantum.errors import ConfigError

from _tiny import tiny

CONFIG = "configs/quantum_averaged_pong_features.yaml"
MIDS = ["paddle_0", "paddle_1"]
CIRCUIT = ["actor.weights", "actor.input_scale", "actor.output_scale"]


def _learner_states(algo):
    """Every learner's module states (one entry per learner; local learner: one)."""
    results = algo.learner_group.foreach_learner(
        lambda l: {m: {k: v.detach().cpu().numpy().copy() for k, v in l.module[m].unwrapped().state_dict().items()} for m in MIDS}
    )
    return [r.get() for r in results]


def _runner_states(algo):
    """Every env runner's module states (the local one first, then the remote ones)."""
    return algo.env_runner_group.foreach_env_runner(
        lambda r: None if r.module is None
        else {m: {k: v.detach().cpu().numpy().copy() for k, v in r.module[m].state_dict().items()} for m in MIDS},
        local_env_runner=True,
    )


def _assert_runners_act_as_the_learner(algo):
    """Every env runner's module (the stacked one reuses cached parameter stacks between calls)
    gives the logits of the learner's modules, each run on its own, on the same observations: no
    runner samples with stale weights."""
    import torch
    from ray.rllib.core.columns import Columns

    obs = torch.linspace(-1, 1, 30).reshape(6, 5)

    def logits(module):
        with torch.no_grad():
            out = module.forward_exploration({m: {Columns.OBS: obs} for m in MIDS})
        return {m: out[m][Columns.ACTION_DIST_INPUTS].numpy() for m in MIDS}

    def one_by_one(learner):  # each module on its own: no stacked path
        with torch.no_grad():
            return {m: learner.module[m].unwrapped().forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS].numpy()
                    for m in MIDS}

    learner = [r.get() for r in algo.learner_group.foreach_learner(one_by_one)][0]
    runners = [r for r in algo.env_runner_group.foreach_env_runner(
        lambda r: None if r.module is None else logits(r.module), local_env_runner=True) if r is not None]
    assert runners
    for runner in runners:
        for mid in MIDS:
            np.testing.assert_allclose(runner[mid], learner[mid], rtol=0, atol=1e-5, err_msg=mid)


def _callback(algo):
    return next(cb for cb in np.atleast_1d(algo.callbacks) if isinstance(cb, ParameterAveragingCallback))


def _assert_synced(algo, n_remote):
    """Circuit params equal across modules; every copy equals the first learner's.

    Runners are compared on the inference-only keys (RLlib never syncs a critic to runners: a
    local runner's unused critic keeps its initial values).
    """
    learners = _learner_states(algo)
    runners = [r for r in _runner_states(algo) if r is not None]
    assert len(runners) >= max(1, n_remote)
    ref = learners[0]
    for key in CIRCUIT:
        np.testing.assert_array_equal(ref["paddle_0"][key], ref["paddle_1"][key])
    copies = [(s, True) for s in learners[1:]] + [(s, False) for s in runners]
    for state, is_learner in copies:
        for mid in MIDS:
            for key, value in state[mid].items():
                if is_learner or not key.startswith("critic."):
                    np.testing.assert_array_equal(value, ref[mid][key], err_msg=f"{mid}/{key}")
    # Params not chosen (the critics) are still per paddle.
    assert not np.array_equal(ref["paddle_0"]["critic.0.weight"], ref["paddle_1"]["critic.0.weight"])
    return ref


@pytest.mark.parametrize(
    "runners,learners,every,optimizer",
    [(0, 0, 1, "reset"), (1, 0, 1, "keep"), (2, 1, 2, "keep")],
    ids=["local-runner-local-learner", "1-remote-runner-local-learner", "2-remote-runners-1-remote-learner"],
)
def test_round_syncs_learners_and_every_env_runner(build_algo, runners, learners, every, optimizer):
    exp = load_experiment(CONFIG, tiny(
        "quantum",
        **{"env_runners.num_env_runners": runners, "env_runners.num_cpus_per_env_runner": 0.5,
           "learners.num_learners": learners, "learners.num_cpus_per_learner": 0.5,
           "averaging.every": every, "averaging.optimizer": optimizer},
    ))
    algo = build_algo(exp.algo_config)

    for it in range(1, every):  # no round before iteration `every`
        info = algo.train()["parameter_averaging"]
        assert info == {"divergence": pytest.approx(info["divergence"]), "averaged": 0.0, "rounds": 0}
        assert info["divergence"] > 0
        state = _learner_states(algo)[0]
        assert not np.array_equal(state["paddle_0"]["actor.weights"], state["paddle_1"]["actor.weights"])

    info = algo.train()["parameter_averaging"]
    assert info["averaged"] == 1.0 and info["rounds"] == 1 and info["divergence"] > 0
    _assert_synced(algo, runners)
    _assert_runners_act_as_the_learner(algo)

    if optimizer == "reset":  # Adam state of the averaged params dropped, the critic's kept
        def _opt_state(learner):
            out = {}
            for mid in MIDS:
                params = dict(learner.module[mid].unwrapped().named_parameters())
                optimizers = [opt for _, opt in learner.get_optimizers_for_module(mid)]
                out[mid] = {k: sum(len(opt.state.get(params[k], {})) for opt in optimizers) for k in ("actor.weights", "critic.0.weight")}
            return out
        counts = [r.get() for r in algo.learner_group.foreach_learner(_opt_state)][0]
        assert all(c["actor.weights"] == 0 and c["critic.0.weight"] > 0 for c in counts.values())

    # A manual round writes exactly the chosen keys; everything else stays as it was.
    before = _learner_states(algo) + [r for r in _runner_states(algo) if r is not None]
    mean = {k: np.full_like(before[0]["paddle_0"][k], 0.25) for k in CIRCUIT}
    _callback(algo).average(algo, mean)
    _assert_synced(algo, runners)
    _assert_runners_act_as_the_learner(algo)
    after = _learner_states(algo) + [r for r in _runner_states(algo) if r is not None]
    assert len(after) == len(before)
    for old, new in zip(before, after):
        for mid in MIDS:
            for key, value in new[mid].items():
                expected = mean[key] if key in CIRCUIT else old[mid][key]
                np.testing.assert_array_equal(value, expected, err_msg=f"{mid}/{key}")


def test_agent_steps_weighting_and_mean():
    w = round_weights("agent_steps", MIDS, {"paddle_0": 300, "paddle_1": 100})
    mean = weighted_mean({"paddle_0": {"w": np.zeros(2, np.float32)}, "paddle_1": {"w": np.ones(2, np.float32)}}, w)
    assert mean["w"].dtype == np.float32 and mean["w"].tolist() == [0.25, 0.25]
    assert round_weights("agent_steps", MIDS, {}) == {"paddle_0": 1.0, "paddle_1": 1.0}


@pytest.mark.parametrize(
    "options,key,match",
    [
        ({"evry": 2}, "", r"unknown key\(s\) \['evry'\]; allowed: \['every', 'modules'"),
        ({"every": 0}, "every", r"must be an int >= 1, got 0 \(int\)"),
        ({"every": "2"}, "every", r"must be an int >= 1, got '2' \(str\)"),
        ({"weights": "steps"}, "weights", r"must be one of \['uniform', 'agent_steps'\]"),
        ({"optimizer": "zero"}, "optimizer", r"must be one of \['keep', 'reset'\]"),
        ({"params": "circuits"}, "params", r"must be one of \['quantum', 'all'\]"),
        ({"params": []}, "params", r"must be one of \['quantum', 'all'\] or a non-empty list"),
        ({"modules": "paddle_0"}, "modules", r"must be None \(all trained modules\) or a list"),
        ({"modules": ["paddle_0"]}, "modules", r"must list at least 2 distinct module ids"),
    ],
)
def test_bad_options_fail_in_the_factory(options, key, match):
    """Keys are the option names (the factory's keyword arguments); the experiment loader puts
    ``averaging.`` in front."""
    pattern = "^" + (re.escape(key) + ": " if key else "") + match
    with pytest.raises(ConfigError, match=pattern) as info:
        averaging_callback(**options)
    assert info.value.key == key
    with pytest.raises(ConfigError, match=pattern) as info:
        validate_averaging_options(options)
    assert info.value.key == key
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.key, str(clone)) == (key, str(info.value))


@pytest.mark.parametrize(
    "overrides,key,match",
    [
        ({"averaging.modules": ["paddle_0", "paddle_7"]}, "averaging.modules",
         r"unknown module id\(s\) \['paddle_7'\]; known modules: \['paddle_0', 'paddle_1'\]"),
        ({"averaging.params": ["actor.*", "encoder.*"]}, "averaging.params",
         r"pattern 'encoder\.\*' matches no .* key of module 'paddle_0'"),
        ({"averaging.every": -1}, "averaging.every", r"must be an int >= 1"),
        ({"averaging.evry": 1}, "averaging", r"unknown key\(s\) \['evry'\]"),
    ],
)
def test_bad_options_fail_before_ray_starts(overrides, key, match):
    with pytest.raises(ConfigError, match=re.escape(f"{CONFIG}: {key}: ") + match) as info:
        load_experiment(CONFIG, overrides)
    assert info.value.key == key


def test_classical_modules_need_params_all():
    with pytest.raises(ConfigError, match=r"averaging\.params: 'quantum' but module 'paddle_0' has no quantum circuit parameters") as info:
        load_experiment("configs/classical_averaged_pong_features.yaml", {"averaging.params": "quantum"})
    assert info.value.key == "averaging.params"


def test_shape_mismatch_names_param_and_modules():
    import gymnasium as gym
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rllib_quantum.modules import QuantumPPORLModule

    obs, act = gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3)
    spec = MultiRLModuleSpec(rl_module_specs={
        mid: RLModuleSpec(module_class=QuantumPPORLModule, observation_space=obs, action_space=act,
                          model_config={"circuit": {"n_qubits": 5, "n_layers": n}})
        for mid, n in (("a", 1), ("b", 2))
    })
    with pytest.raises(ConfigError, match=r"^params: parameter 'actor.weights' has shape .* in module 'a' but .* in module 'b'") as info:
        averaging_callback().check_modules(["a", "b"], spec.build())
    assert info.value.key == "params"


def test_unknown_module_fails_at_algorithm_init_outside_config_py(build_algo):
    """A hand-written RLlib config with the callback: the check runs in on_algorithm_init."""
    exp = load_experiment("configs/quantum_independent_pong_features.yaml", tiny("quantum"))
    config = exp.algo_config.copy(copy_frozen=False).callbacks(averaging_callback(modules=["paddle_0", "paddle_9"]))
    with pytest.raises(Exception, match=r"modules: unknown module id\(s\) \['paddle_9'\]"):
        build_algo(config)


def test_naive_learner_set_weights_plus_sync_leaves_remote_runners_stale(build_algo):
    """The Ray 2.60 trap the callback avoids (DESIGN.md): same weights seq no -> runners skip.

    If this starts failing, RLlib changed its sync rule; the callback still works either way.
    """
    exp = load_experiment(CONFIG, tiny("quantum", **{"env_runners.num_env_runners": 1, "averaging.every": 99}))
    algo = build_algo(exp.algo_config)
    algo.train()
    marker = np.full_like(_learner_states(algo)[0]["paddle_0"]["actor.weights"], 0.5)
    algo.learner_group.set_weights({"paddle_0": {"actor.weights": marker}})
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True, timeout_seconds=30)
    np.testing.assert_array_equal(_learner_states(algo)[0]["paddle_0"]["actor.weights"], marker)
    remote = [r for r in _runner_states(algo)[1:] if r is not None]
    assert remote and all(not np.array_equal(r["paddle_0"]["actor.weights"], marker) for r in remote)
    _callback(algo).average(algo, {k: _learner_states(algo)[0]["paddle_0"][k] for k in CIRCUIT})
    remote = [r for r in _runner_states(algo)[1:] if r is not None]
    assert all(np.array_equal(r["paddle_0"]["actor.weights"], marker) for r in remote)


def test_callback_options_as_keywords_with_functools_partial_in_a_list(build_algo):
    """The way RLlib users write callbacks: `functools.partial(Callback, **options)`, in a list with
    other callbacks; the options reach every copy RLlib builds (algorithm and env runners)."""
    import functools

    from ray.rllib.callbacks.callbacks import RLlibCallback

    class CountIterations(RLlibCallback):
        def __init__(self):
            super().__init__()
            self.iterations = 0

        def on_train_result(self, *, result, **kwargs):
            self.iterations += 1
            result["count_iterations"] = self.iterations

    exp = load_experiment(CONFIG, tiny("quantum", **{"env_runners.num_env_runners": 1, "env_runners.num_cpus_per_env_runner": 0.5}))
    exp.algo_config.callbacks([functools.partial(ParameterAveragingCallback, every=2, params="quantum"), CountIterations])
    algo = build_algo(exp.algo_config)
    first, second = algo.train(), algo.train()
    assert first["parameter_averaging"]["averaged"] == 0.0 and second["parameter_averaging"]["averaged"] == 1.0
    assert second["parameter_averaging"]["rounds"] == 1 and second["count_iterations"] == 2
    assert _callback(algo).options["every"] == 2
    _assert_synced(algo, 1)
    with pytest.raises(ConfigError, match=r"every: must be an int >= 1"):
        ParameterAveragingCallback(every=0)
