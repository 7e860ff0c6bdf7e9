"""The learner's batched work for stacked quantum modules: one PPO loss computation (critic included)
per stacked group and one fused Adam step for all modules equal RLlib's per-module execution, with
every module keeping its own parameters, optimizer state, metrics and checkpoint state."""

import copy

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_quantum.config import load_experiment
from rllib_quantum.learners import QuantumPPOTorchLearner
from rllib_quantum.learners.quantum_ppo_torch_learner import step_adams_together, steps_together
from rllib_quantum.modules import StackedQuantumMultiRLModule
from rllib_quantum.modules.stacked_multi_rlm import STACKED_OUTPUTS
from tests._tiny import ADAM, tiny

SPREAD = "configs/quantum_independent_spread.yaml"
FEATURES = "configs/quantum_independent_pong_features.yaml"
SPREAD_TINY = {
    "env_config.N": 3,
    "ppo.train_batch_size_per_learner": 200, "ppo.minibatch_size": 100, "ppo.num_epochs": 1,
    "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 1,
    "model_config.circuit.n_layers": 1,
}
# ADAM: these tests compare batched and per-module execution of RLlib's loss and Adam steps to float32 rounding
# the pong config's mirror dropped: a mirrored module runs alone (tests/test_mirror.py), these test the stacked path
CONFIGS = {"spread": (SPREAD, SPREAD_TINY), "pong_features": (FEATURES, tiny("quantum", **ADAM, **{"model_config.mirror": None}))}
PPO_METRICS = ("policy_loss", "vf_loss", "vf_loss_unclipped", "vf_explained_var", "entropy", "mean_kl_loss")


def _learner(build_algo, name, stack=True, policies_to_train=None, **overrides):
    path, tiny_overrides = CONFIGS[name]
    exp = load_experiment(path, {**tiny_overrides, "stack_modules": stack, **overrides})
    config = exp.algo_config
    if policies_to_train is not None:
        config = config.copy(copy_frozen=False).multi_agent(policies_to_train=policies_to_train)
    algo = build_algo(config)
    learner = algo.learner_group._learner
    assert type(learner.module) is (StackedQuantumMultiRLModule if stack else MultiRLModule)
    return algo, learner


def _train_batch(learner, rows=40, seed=0):
    """A PPO train batch per module (advantages and value targets included), as the learner
    connectors would hand it over; logp and dist inputs from the module, so ratios straddle the clip."""
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for mid in sorted(learner.module.keys()):
        module = learner.module[mid].unwrapped()
        space = module.observation_space
        obs = torch.rand(rows, *space.shape, generator=g) * (space.high - space.low).clip(max=4) + space.low.clip(min=-2)
        with torch.no_grad():
            logits = module.forward_train({Columns.OBS: obs.float()})[Columns.ACTION_DIST_INPUTS]
            dist = module.get_train_action_dist_cls().from_logits(logits)
            actions = dist.sample()
            logp = dist.logp(actions) + 0.5 * torch.randn(rows, generator=g)
        batch[mid] = {
            Columns.OBS: obs.float(), Columns.ACTIONS: actions, Columns.ACTION_LOGP: logp,
            Columns.ACTION_DIST_INPUTS: logits + 0.1 * torch.randn(logits.shape, generator=g),
            Postprocessing.ADVANTAGES: torch.randn(rows, generator=g),
            Postprocessing.VALUE_TARGETS: 5 * torch.randn(rows, generator=g),
        }
    return batch


def _losses_and_grads(learner, batch, batched: bool, shared_outputs: bool = True):
    for mid in batch:
        learner.module[mid].zero_grad(set_to_none=True)
    fwd_out = learner.module.forward_train(batch)
    if not shared_outputs:  # the loss restacks the per-module slices
        fwd_out = {mid: {k: v for k, v in out.items() if k != STACKED_OUTPUTS} for mid, out in fwd_out.items()}
    # batched=False: RLlib's Learner.compute_losses, PPOTorchLearner.compute_loss_for_module per module
    compute = learner.compute_losses if batched else super(QuantumPPOTorchLearner, learner).compute_losses
    losses = compute(fwd_out=fwd_out, batch=batch)
    sum(losses.values()).backward()
    if batched:  # the batched loss logs its metrics once per update (Learner.update's last step)
        learner._log_group_metrics()
    metrics = {mid: {k: float(learner.metrics.peek((mid, k))) for k in PPO_METRICS} for mid in batch}
    grads = {f"{mid}.{n}": p.grad.clone() for mid in batch for n, p in learner.module[mid].named_parameters() if p.grad is not None}
    return {m: float(l.detach()) for m, l in losses.items()}, grads, metrics


@pytest.mark.parametrize("name, overrides, masked", [
    ("spread", {}, True),  # RLlib's PPO masks each episode's artificial last step
    ("spread", {"ppo.use_kl_loss": True, "ppo.kl_coeff": 0.3, "ppo.vf_clip_param": 2.0}, False),
    ("spread", {"env_config.continuous_actions": True}, True),  # Box actions: Gaussian heads, log-std parameters
    ("pong_features", {}, True),
    ("pong_features", {"model_config.critic": "quantum", "model_config.critic_hiddens": []}, False),  # stacked critic circuits
])
def test_batched_ppo_loss_equals_per_module_loss(build_algo, name, overrides, masked):
    """Same learner, same batch: the batched group loss (critic stacked) and PPOTorchLearner's loss
    per module give equal losses, gradients and per-module metrics."""
    _, learner = _learner(build_algo, name, **overrides)
    batch = _train_batch(learner)
    if masked:
        for m, mid in enumerate(batch):
            batch[mid][Columns.LOSS_MASK] = torch.arange(40) % (3 + m) != 0
    fwd_out = learner.module.forward_train(batch)
    assert learner._loss_groups(fwd_out, batch) == [sorted(batch)]
    assert STACKED_OUTPUTS in fwd_out[sorted(batch)[0]]
    want = _losses_and_grads(learner, batch, False)
    assert len(batch) >= (3 if name == "spread" else 2)
    for got in (_losses_and_grads(learner, batch, True), _losses_and_grads(learner, batch, True, shared_outputs=False)):
        for mid in batch:
            assert got[0][mid] == pytest.approx(want[0][mid], rel=1e-5, abs=1e-6)
            assert got[2][mid] == pytest.approx(want[2][mid], rel=1e-5, abs=1e-6)
        assert got[1].keys() == want[1].keys()
        for key in want[1]:
            torch.testing.assert_close(got[1][key], want[1][key], atol=1e-5, rtol=1e-4, msg=key)


def test_groups_fall_back_to_per_module_losses(build_algo):
    """Unequal rows, a loss mask in some batches only, or a group of one: PPOTorchLearner's own
    loss for those modules."""
    _, learner = _learner(build_algo, "spread")
    batch = _train_batch(learner)
    fwd_out = learner.module.forward_train(batch)
    uneven = {**batch, "agent_2": {k: v[:30] for k, v in batch["agent_2"].items()}}
    assert learner._loss_groups(learner.module.forward_train(uneven), uneven) == []
    masked = {**batch, "agent_0": {**batch["agent_0"], Columns.LOSS_MASK: torch.ones(40, dtype=torch.bool)}}
    assert learner._loss_groups(fwd_out, masked) == []
    alone = {"agent_1": batch["agent_1"]}
    assert learner._loss_groups(learner.module.forward_train(alone), alone) == []
    losses = learner.compute_losses(fwd_out=learner.module.forward_train(uneven), batch=uneven)
    assert set(losses) == set(batch) and all(torch.isfinite(l) for l in losses.values())


@pytest.mark.parametrize("kind", [{"fused": True}, {"foreach": True}])  # the package's; a restored older checkpoint's
def test_step_adams_together_equals_each_optimizers_step(kind):
    """Fused (or foreach) Adams with per-group lrs (one of them changed between steps, as lr schedules do),
    a parameter without gradient, and one optimizer restored from a state dict: stepped together
    they end bitwise equal to stepping each, moments and step counts included."""
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)) for _ in range(4)]
    twins = copy.deepcopy(nets)

    def adams(modules):
        return [torch.optim.Adam([{"params": list(m[0].parameters()), "lr": 0.01},
                                  {"params": list(m[2].parameters()), "lr": 0.003 * (i + 1)}], **kind)
                for i, m in enumerate(modules)]

    alone, together = adams(nets), adams(twins)
    assert all(map(steps_together, together)) and not steps_together(torch.optim.Adam(nets[0].parameters()))
    for step in range(6):
        x = torch.randn(10, 5)
        for modules in (nets, twins):
            for m in modules:
                m.zero_grad(set_to_none=True)
            sum(m(x).square().sum() for m in modules[: 3 if step < 2 else 4]).backward()  # nets[3] joins late
        if step == 3:  # a checkpoint round trip of one optimizer, and an lr schedule step
            together[1].load_state_dict(copy.deepcopy(together[1].state_dict()))
            for opts in (alone, together):
                opts[2].param_groups[0]["lr"] = 0.001
        for optimizer in alone:
            optimizer.step()
        step_adams_together(together)
    for a, b in zip(nets, twins):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
    for a, b in zip(alone, together):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa["param_groups"] == sb["param_groups"] and sa["state"].keys() == sb["state"].keys()
        for i in sa["state"]:
            for k in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(sa["state"][i][k], sb["state"][i][k])
    assert int(alone[3].state_dict()["state"][0]["step"]) == 4


def _params(learner):
    return {f"{mid}.{n}": p.detach().clone() for mid in learner.module.keys() for n, p in learner.module[mid].named_parameters()}


def _adam_states(learner):
    out = {}
    for mid in learner.module.keys():
        for name, optimizer in learner.get_optimizers_for_module(mid):
            state = optimizer.state_dict()
            out[mid, name] = [(g["name"], g["lr"]) for g in state["param_groups"]], {
                i: {k: v.clone() for k, v in s.items()} for i, s in state["state"].items()
            }
    return out


def _assert_close_params(got, want, atol=1e-4):
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key.endswith("actor.weights"):
            # The last layer's final RZ (weights[-1, :, 2]) cannot change <Z>: its gradient is float
            # noise that Adam scales up to lr-sized steps (tests/test_stacking.py). Every other weight agrees.
            torch.testing.assert_close(got[key][:-1], value[:-1], atol=atol, rtol=atol, msg=key)
            torch.testing.assert_close(got[key][-1, :, :2], value[-1, :, :2], atol=atol, rtol=atol, msg=key)
        else:
            torch.testing.assert_close(got[key], value, atol=atol, rtol=atol, msg=key)


@pytest.mark.parametrize("name", ["spread", "pong_features"])
def test_ppo_iteration_with_batched_learner_equals_per_module_execution(build_algo, name, monkeypatch):
    """One PPO iteration (sampling, GAE, minibatch updates), stacked + batched learner against
    RLlib's MultiRLModule and per-module losses and optimizer steps: equal weights, per-module PPO
    metrics and Adam state (moments and steps per parameter, each module its own optimizer)."""
    runs, batched_groups = {}, []
    for stack in (True, False):
        algo, learner = _learner(build_algo, name, stack=stack, **{"ppo.num_epochs": 2})
        group_losses = learner._group_losses
        monkeypatch.setattr(learner, "_group_losses", lambda group, *a: batched_groups.append(group) or group_losses(group, *a))
        result = algo.train()
        runs[stack] = learner, result
    assert batched_groups and all(sorted(g) == sorted(runs[False][0].module.keys()) for g in batched_groups)  # stacked run only
    (stacked, r_stacked), (plain, r_plain) = runs[True], runs[False]
    _assert_close_params(_params(stacked), _params(plain))
    for mid in plain.module.keys():
        for key in PPO_METRICS:
            assert r_stacked["learners"][mid][key] == pytest.approx(r_plain["learners"][mid][key], rel=1e-3, abs=1e-5), key
    states_stacked, states_plain = _adam_states(stacked), _adam_states(plain)
    assert states_stacked.keys() == states_plain.keys() and len(states_stacked) == len(plain.module.keys())
    for key, (groups, state) in states_plain.items():
        assert states_stacked[key][0] == groups
        for i, s in state.items():
            assert int(states_stacked[key][1][i]["step"]) == int(s["step"]) > 0
            torch.testing.assert_close(states_stacked[key][1][i]["exp_avg"], s["exp_avg"], atol=1e-4, rtol=1e-3)


def test_checkpoint_round_trip_then_update_equals_per_module_update(build_algo, tmp_path):
    """Train with an lr schedule, checkpoint, restore into a fresh stacked algo and into a per-module
    (unstacked) learner; one more update on the same batch ends equal everywhere, optimizer state too."""
    schedule = {"ppo.lr": [[0, 0.01], [500000, 0.001]]}
    algo, learner = _learner(build_algo, "spread", **schedule)
    algo.train()
    algo.save_to_path(str(tmp_path / "ckpt"))
    restored_algo, restored = _learner(build_algo, "spread", **schedule)
    restored_algo.restore_from_path(str(tmp_path / "ckpt"))
    _, plain = _learner(build_algo, "spread", stack=False, **schedule)
    plain.set_state(learner.get_state())
    lrs = {g["lr"] for _, o in learner.get_optimizers_for_module("agent_0") for g in o.param_groups}
    assert lrs and all(0.001 < lr < 0.01 * 1.01 for lr in lrs if lr > 0)
    for other in (restored, plain):
        assert _adam_states(other).keys() == _adam_states(learner).keys()
    batch = _train_batch(learner, seed=1)
    for each in (learner, restored, plain):
        each._uncompiled_update(copy.deepcopy(batch))
    want, want_states = _params(learner), _adam_states(learner)
    for other in (restored, plain):
        _assert_close_params(_params(other), want, atol=1e-5)
        for key, (groups, state) in _adam_states(other).items():
            assert groups == want_states[key][0]
            for i, s in state.items():
                assert int(s["step"]) == int(want_states[key][1][i]["step"]) >= 2
                torch.testing.assert_close(s["exp_avg_sq"], want_states[key][1][i]["exp_avg_sq"], atol=1e-6, rtol=1e-4)


def test_mixed_setups_fall_back(build_algo):
    """A classical module beside quantum ones keeps RLlib's loss and optimizer; policies_to_train
    excludes a quantum module: it is neither in a loss group nor stepped."""
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    _, learner = _learner(build_algo, "spread")
    spec = RLModuleSpec(module_class=DefaultPPOTorchRLModule, observation_space=learner.module["agent_0"].observation_space,
                        action_space=learner.module["agent_0"].action_space, model_config={"fcnet_hiddens": [8]})
    learner.add_module(module_id="classical", module_spec=spec)
    [(_, classical_adam)] = learner.get_optimizers_for_module("classical")
    assert not steps_together(classical_adam)
    batch = _train_batch(learner)
    fwd_out = learner.module.forward_train(batch)
    assert learner._loss_groups(fwd_out, batch) == [["agent_0", "agent_1", "agent_2"]]
    before = _params(learner)
    learner._uncompiled_update(batch)
    learner.after_gradient_based_update(timesteps={})  # as Learner.update does after its minibatches
    after = _params(learner)
    assert all(not torch.equal(before[k], after[k]) for k in before if k.startswith("classical.") and "bias" not in k)
    for mid in ("classical", "agent_0", "agent_2"):
        assert all(np.isfinite(float(learner.metrics.peek((mid, key)))) for key in PPO_METRICS)

    # policies_to_train: agent_1 is not trained; the other two still share a batched loss
    _, partial = _learner(build_algo, "spread", policies_to_train=["agent_0", "agent_2"])
    before = _params(partial)
    partial_batch = _train_batch(partial)
    assert partial.should_module_be_updated("agent_1") is False
    trained = {m: b for m, b in partial_batch.items() if partial.should_module_be_updated(m)}
    assert partial._loss_groups(partial.module.forward_train(trained), trained) == [["agent_0", "agent_2"]]
    partial._uncompiled_update(trained)
    after = _params(partial)
    for key, value in before.items():
        assert torch.equal(value, after[key]) == key.startswith("agent_1."), key
