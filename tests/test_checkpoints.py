"""Save -> restore round trip: a restored algorithm (and ``load_modules``) computes bit-identical
logits for every module, learner side and env-runner side, and Adam's state survives."""

import pytest
import torch

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

from rllib_quantum import load_experiment, load_modules
from tests._tiny import tiny

QUANTUM = "configs/quantum_independent_pong_features.yaml"
CLASSICAL = "configs/classical_independent_pong_features.yaml"
CASES = {
    "quantum, classical critic": (QUANTUM, tiny("quantum")),
    "quantum, quantum critic": (QUANTUM, tiny("quantum", **{"model_config.critic": "quantum"})),
    "classical": (CLASSICAL, tiny("classical")),
}


def _fixed_obs(module_id: str, n: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(sum(map(ord, module_id)))
    return torch.rand(n, 5, generator=gen) * 2 - 1  # the features view: 5 numbers in [-1, 1]


@torch.no_grad()
def _logits(modules) -> dict:
    return {mid: modules[mid].forward_inference({Columns.OBS: _fixed_obs(mid)})[Columns.ACTION_DIST_INPUTS]
            for mid in modules.keys()}


def _optimizer_state(learner) -> dict:
    """``{optimizer name: [(step, exp_avg, exp_avg_sq) per parameter Adam stepped]}`` of every
    module's optimizers (the shipped quantum config's actor takes natural-gradient steps instead:
    Adam keeps no state for it)."""
    out = {}
    for mid in learner.module.keys():
        for name, optim in learner.get_optimizers_for_module(mid):
            out[name] = [
                tuple(optim.state[p][k].clone() for k in ("step", "exp_avg", "exp_avg_sq"))
                for group in optim.param_groups for p in group["params"] if optim.state.get(p)
            ]
            assert out[name], name
    return out


def _assert_same_logits(expected: dict, got: dict, what: str) -> None:
    assert set(expected) == set(got), what
    for mid in expected:
        assert torch.equal(expected[mid], got[mid]), f"{what}: {mid} logits differ by {(expected[mid] - got[mid]).abs().max()}"


@pytest.mark.parametrize("case", list(CASES))
def test_restore_gives_identical_logits_and_optimizer_state(case, build_algo, tmp_path):
    path, overrides = CASES[case]
    exp = load_experiment(path, overrides)
    algo = build_algo(exp.algo_config)
    algo.train()
    learner = algo.learner_group._learner
    before_learner = _logits(learner.module)
    before_runner = _logits(algo.env_runner.module)
    before_optim = _optimizer_state(learner)
    steps = {int(s[0]) for states in before_optim.values() for s in states}
    assert len(steps) == 1 and steps.pop() >= 2  # every group stepped once per minibatch
    checkpoint = algo.save_to_path(str(tmp_path / "checkpoint"))

    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        _assert_same_logits(before_learner, _logits(restored.learner_group._learner.module), "restored learner")
        _assert_same_logits(before_runner, _logits(restored.env_runner.module), "restored env runner")
        after_optim = _optimizer_state(restored.learner_group._learner)
        assert set(after_optim) == set(before_optim)
        for name, states in before_optim.items():
            assert len(after_optim[name]) == len(states), name
            for (step, m, v), (step2, m2, v2) in zip(states, after_optim[name]):
                assert int(step) == int(step2) and torch.equal(m, m2) and torch.equal(v, v2), name
        # Both keep training from there.
        assert restored.train()["training_iteration"] == 2
    finally:
        restored.stop()

    _assert_same_logits(before_learner, _logits(load_modules(checkpoint)), "load_modules")
