"""The learner's faster batching equals RLlib's: the connector pieces (first and GAE) on sampled
multi-agent episodes (terminated, truncated and cut-off ones), the value targets of modules of
unequal lengths, and the minibatch iterator, shuffles included."""

import copy

import numpy as np
import pytest
import torch
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.learner import AddOneTsToEpisodesAndTruncate, GeneralAdvantageEstimation
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from rllib_quantum.config import load_experiment
from rllib_quantum.learners.batching import (
    BOOTSTRAPPED_LENGTHS,
    AddOneTsToEpisodesAndTruncateAsArrays,
    EpisodesToModuleColumns,
    GeneralAdvantageEstimationAcrossModules,
    TensorMiniBatchCyclicIterator,
    rllibs_pieces,
    value_targets_across_modules,
)
from tests._tiny import tiny

SPREAD_TINY = {  # short episodes (25 steps): many end inside the sample, by truncation
    "env_config.N": 3, "ppo.train_batch_size_per_learner": 200, "ppo.minibatch_size": 100, "ppo.num_epochs": 1,
    "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 2, "model_config.circuit.n_layers": 1,
}
CONFIGS = {
    "spread": ("configs/quantum_independent_spread.yaml", SPREAD_TINY),
    "pong_features": ("configs/quantum_independent_pong_features.yaml", tiny("quantum")),  # misses terminate
    "pong_classical": ("configs/classical_independent_pong_features.yaml", tiny("classical")),
}


def _assert_same_columns(ours: dict, theirs: dict, where: str):
    assert ours.keys() == theirs.keys(), where
    for key in theirs:
        a, b = ours[key], theirs[key]
        if isinstance(b, dict):
            _assert_same_columns(a, b, f"{where}/{key}")
        elif torch.is_tensor(b):
            assert torch.is_tensor(a) and a.dtype == b.dtype and torch.equal(a, b), f"{where}/{key}"
        else:
            assert np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b), f"{where}/{key}"


@pytest.fixture(scope="module")
def sampled(ray_session, tmp_path_factory):
    """Per config: its learner and 410 env steps of episodes sampled by its env runner."""
    import ray.tune.trainable.trainable as trainable

    trainable.DEFAULT_STORAGE_PATH = str(tmp_path_factory.mktemp("algos"))
    out, algos = {}, []
    for name, (path, overrides) in CONFIGS.items():
        algo = load_experiment(path, overrides).algo_config.build_algo()
        algos.append(algo)
        episodes = algo.env_runner.sample(num_timesteps=410, random_actions=False)
        out[name] = (algo.learner_group._learner, episodes)
    yield out
    for algo in algos:
        algo.stop()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_learner_pipeline_equals_rllibs(sampled, name):
    learner, episodes = sampled[name]
    ours = learner._learner_connector
    # classical configs too: RLlib's episode-to-batch pieces fused into one, GAE across modules
    assert [type(p) for p in ours.connectors] == [EpisodesToModuleColumns, NumpyToTensor, GeneralAdvantageEstimationAcrossModules]
    assert type(ours.connectors[0].pieces[0]) is AddOneTsToEpisodesAndTruncateAsArrays
    theirs = copy.deepcopy(ours)
    theirs.connectors[:] = rllibs_pieces(theirs.connectors)
    assert type(theirs.connectors[0]) is AddOneTsToEpisodesAndTruncate and len(theirs.connectors) == 9
    assert type(theirs.connectors[-1]) is GeneralAdvantageEstimation
    ends = {(e.is_terminated, e.is_truncated) for ma in episodes for e in ma.agent_episodes.values()}
    assert len(ends) >= 2, f"the sample should hold episodes that end differently, got {ends}"
    batches, shared_data = [], []
    for pipeline in (ours, theirs):
        shared = {}
        batches.append(pipeline(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
                                shared_data=shared, metrics=learner.metrics))
        assert shared["_added_loss_mask_for_valid_episode_ts"]
        shared_data.append(shared)
    _assert_same_columns(*batches, name)
    assert BOOTSTRAPPED_LENGTHS in shared_data[0]  # the fused piece's own path ran, not its fallback
    # its fallback (the pieces it replaced, run one by one) gives the same batch
    fallback = copy.deepcopy(ours)
    fallback.connectors[0]._columns = lambda *args: None
    shared = {}
    _assert_same_columns(fallback(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data=shared,
                                  metrics=learner.metrics), batches[1], f"{name} (fallback)")
    assert BOOTSTRAPPED_LENGTHS not in shared
    assert shared_data[0]["memorized_map_structure"] == shared_data[1]["memorized_map_structure"]
    assert [list(b) for b in batches[0].values()] == [list(b) for b in batches[1].values()]  # column order too
    assert not all(bool(m["loss_mask"].all()) for m in batches[0].values())  # the bootstrap rows are masked


def test_value_targets_of_unequal_modules_equal_rllibs():
    rng = np.random.default_rng(0)
    for rows in (1, 7, 40):  # each length a group of three modules
        values = rng.normal(size=(3, rows)).astype(np.float32)
        rewards = rng.normal(size=(3, rows)).astype(np.float32)
        terminateds, truncateds = rng.random((3, rows)) < 0.1, rng.random((3, rows)) < 0.1
        targets = value_targets_across_modules(values, rewards, terminateds, truncateds, gamma=0.95, lambda_=0.9)
        assert targets.dtype == np.float32
        for m in range(3):
            ref = compute_value_targets(values[m], rewards[m], terminateds[m], truncateds[m], gamma=0.95, lambda_=0.9)
            assert np.array_equal(targets[m], ref)


def _synthetic_batch() -> MultiAgentBatch:
    """Two modules of different lengths, float, int and bool columns, one with a trailing dim."""
    g = torch.Generator().manual_seed(0)
    modules = {}
    for mid, rows in (("a", 37), ("b", 50)):
        modules[mid] = SampleBatch({
            "obs": torch.randn(rows, 3, generator=g), "actions": torch.randint(0, 3, (rows,), generator=g),
            "loss_mask": torch.rand(rows, generator=g) > 0.2, "advantages": torch.randn(rows, generator=g),
        })
    return MultiAgentBatch(modules, env_steps=50)


def _both(batch: MultiAgentBatch, seed: int, **kwargs):
    out = []
    for cls in (TensorMiniBatchCyclicIterator, MiniBatchCyclicIterator):
        np.random.seed(seed)
        out.append([(dict(mb.policy_batches), mb.env_steps()) for mb in cls(copy.deepcopy(batch), **kwargs)])
    return out


@pytest.mark.parametrize("kwargs", [
    {"minibatch_size": 16, "num_epochs": 3, "shuffle_batch_per_epoch": True},  # wraps mid-minibatch
    {"minibatch_size": 10, "num_epochs": 2, "shuffle_batch_per_epoch": False},
    {"minibatch_size": 37, "num_epochs": 2, "shuffle_batch_per_epoch": True},  # wraps exactly at the end
    {"minibatch_size": 64, "num_epochs": 1, "shuffle_batch_per_epoch": True},  # larger than a module's batch
    {"minibatch_size": 16, "num_epochs": 1, "shuffle_batch_per_epoch": True, "num_total_minibatches": 9},
])
def test_minibatches_equal_rllibs(kwargs):
    ours, theirs = _both(_synthetic_batch(), seed=3, **kwargs)
    assert len(ours) == len(theirs) >= 1
    for i, ((mine, steps), (ref, ref_steps)) in enumerate(zip(ours, theirs)):
        assert steps == ref_steps
        assert mine.keys() == ref.keys()
        for mid in ref:
            assert len(mine[mid]) == len(ref[mid]) == kwargs["minibatch_size"]
            assert mine[mid].num_grad_updates == ref[mid].num_grad_updates
            _assert_same_columns(dict(mine[mid]), dict(ref[mid]), f"minibatch {i}, module {mid}")


def test_minibatches_of_a_sampled_batch_equal_rllibs(sampled):
    learner, episodes = sampled["spread"]
    columns = learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
                                         shared_data={}, metrics=learner.metrics)
    batch = MultiAgentBatch({mid: SampleBatch(c) for mid, c in columns.items()}, env_steps=410)
    ours, theirs = _both(batch, seed=0, minibatch_size=96, num_epochs=2, shuffle_batch_per_epoch=True)
    assert len(ours) == len(theirs) >= 4
    for (mine, _), (ref, _) in zip(ours, theirs):
        for mid in ref:
            _assert_same_columns(dict(mine[mid]), dict(ref[mid]), mid)


def test_batches_it_cannot_cut_go_to_rllibs_iterator():
    batch = _synthetic_batch()
    batch.policy_batches["a"]["infos"] = np.array([{"t": i} for i in range(37)], dtype=object)  # not a tensor
    ours, theirs = _both(batch, seed=1, minibatch_size=16, num_epochs=2, shuffle_batch_per_epoch=True)
    assert len(ours) == len(theirs)
    for (mine, _), (ref, _) in zip(ours, theirs):
        for mid in ref:
            assert mine[mid].keys() == ref[mid].keys()
            assert torch.equal(mine[mid]["obs"], ref[mid]["obs"])


@pytest.mark.parametrize("lstm", [False, True])
def test_a_single_agent_config_equals_rllibs(build_algo, lstm):
    """RLlib's own modules on CartPole (single-agent episodes; with an LSTM, zero-padded sequences):
    the array columns survive RLlib's zero-padding, GAE (and with sequences the iterator) hand over
    to RLlib's, and it trains."""
    from ray.rllib.algorithms.ppo import PPOConfig

    from rllib_quantum.learners import FastBatchingPPOTorchLearner

    config = (
        PPOConfig().environment("CartPole-v1")
        .rl_module(model_config={"use_lstm": lstm, "max_seq_len": 10, "lstm_cell_size": 8})
        .learners(learner_class=FastBatchingPPOTorchLearner)
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=120, minibatch_size=60, num_epochs=1)
    )
    algo = build_algo(config)
    learner = algo.learner_group._learner
    episodes = algo.env_runner.sample(num_timesteps=130, random_actions=False)
    ours = learner._learner_connector
    theirs = copy.deepcopy(ours)
    theirs.connectors[0] = AddOneTsToEpisodesAndTruncate()
    batches = [p(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}, metrics=learner.metrics)
               for p in (ours, theirs)]
    _assert_same_columns(*batches, f"lstm={lstm}")
    # with an LSTM: (sequences, max_seq_len), zero-padded; else one row per timestep
    assert batches[0]["default_policy"]["loss_mask"].dim() == (2 if lstm else 1)
    result = algo.train()
    assert result["learners"]["default_policy"]["num_module_steps_trained"] > 0
