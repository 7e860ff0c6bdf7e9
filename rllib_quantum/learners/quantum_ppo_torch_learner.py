"""``QuantumPPOTorchLearner``: RLlib's PPO torch learner plus what training a circuit needs.

Three additions, all inert for modules without circuits (RLlib's classical modules train exactly as
under ``PPOTorchLearner``), and a numerical-safety check for every module:

* **Per-group learning rates.** A :class:`~rllib_quantum.modules.QuantumPPORLModule` splits its
  trainable parameters into ``circuit`` (variational weights), ``input_scale``, ``output_scale``,
  ``critic`` (critic MLP, or a quantum critic's head) and ``classical`` (encoder, actor read-out
  head). The module's Adam optimizer (RLlib's
  ``default_optimizer``) has one param group per parameter group (its ``"name"``), whose learning
  rate is PPO's ``lr`` (a fixed value or a schedule) times the group's entry in
  ``model_config["lr_multipliers"]`` (its ``"lr_multiplier"``); a multiplier of 0 freezes the group.
* **Circuit diagnostics**, logged per module under ``learners/<module_id>/quantum/...`` (so Tune
  writes them to TensorBoard and ``progress.csv``), for every circuit of the module (``actor``,
  and ``critic`` when it is quantum), each the mean over the minibatches of an update (kept as
  tensors while training, every module's in one tensor per minibatch: one read per update):

  ===============================  =============================================================
  ``quantum/<c>_weights_grad_norm``  L2 norm of the loss gradient w.r.t. the circuit weights (a
                                     vanishing norm on a learning plateau hints at a barren plateau)
  ``quantum/<c>_readout_abs_mean``   mean ``|<Z_i>|`` over the batch and read-out wires, before
                                     output scaling (near 1: saturated read-outs, tiny gradients)
  ``quantum/<c>_input_scale_mean``   mean ``|input scaling|`` (angles per unit of encoder output)
  ``quantum/<c>_output_scale_mean``  mean ``|output scaling|`` (logit range per unit of ``<Z>``)
  ===============================  =============================================================

* **Batched execution of a stacked group.** With
  :class:`~rllib_quantum.modules.StackedQuantumMultiRLModule` (independent quantum policies of one
  shape), PPO's loss for every group of two or more modules with equal minibatch rows is one batched
  computation on ``(modules, rows, ...)`` stacks, the critics one batched MLP pass (the same terms
  and per-module metrics as ``PPOTorchLearner.compute_loss_for_module``; anything else falls back to
  it; its metrics are logged once per update, from the last minibatch, as RLlib's window of 1
  keeps them), and the modules' fused Adams take one step together (:func:`step_adams_together`), each
  optimizer still owning its state (checkpoints, lr schedules). Results equal per-module execution
  within float32 rounding (``tests/test_stacked_learner.py``).
* **RLlib's batching, vectorised** (from :class:`~rllib_quantum.learners.FastBatchingPPOTorchLearner`,
  which the classical YAML experiments use too): the same batches, value targets and minibatches
  as RLlib's, made per episode, for all modules at once and as tensor views instead of per
  timestep, per module and per ``SampleBatch`` slice.
* **Natural-gradient steps** (``model_config["natural_gradient"]``, off by default): the actor's
  circuit weights, scalings and linear read-out head take natural-gradient steps of a set KL
  instead of Adam's; the Fisher matrix is estimated once per update from states of its first
  minibatch (see :mod:`rllib_quantum.learners.natural_gradient`); encoder, critic and log-std stay
  on Adam. Logged as ``quantum/actor_natural_step_kl`` (the steps' quadratic KL estimate) and
  ``quantum/actor_natural_step_norm``. With several learners their Fisher matrices are averaged,
  as their gradients are.
* **Numerical safety.** Each module's loss is checked before ``backward()`` and its parameters
  after every optimizer step; a nan or inf raises ``FloatingPointError`` naming the module (and the
  parameters), instead of RLlib's default of zeroing non-finite gradients and training on. The
  modules check their own inputs and outputs (see :class:`~rllib_quantum.modules.QuantumPPORLModule`).

Use it with any PPO config: ``config.training(learner_class=QuantumPPOTorchLearner)``; YAML
experiments and :func:`rllib_quantum.with_quantum_policies` set it for you.

Example:
    >>> from ray.rllib.algorithms.ppo import PPOConfig
    >>> config = PPOConfig().training(learner_class=QuantumPPOTorchLearner, lr=3e-3)
    >>> config.learner_class.__name__, config.lr
    ('QuantumPPOTorchLearner', 0.003)
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, List, Tuple

import torch
from torch.optim import adam as torch_adam, optimizer as torch_optimizer

from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.core import COMPONENT_OPTIMIZER
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import DEFAULT_OPTIMIZER, ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY, Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.numpy import SMALL_NUMBER
from ray.rllib.utils.typing import ModuleID, ParamDict

from rllib_quantum import safety
from rllib_quantum.circuits import QuantumLayer
from rllib_quantum.learners import natural_gradient
from rllib_quantum.learners.fast_batching_ppo_torch_learner import FastBatchingPPOTorchLearner
from rllib_quantum.modules.model_config import inverse_temperature_at
from rllib_quantum.modules.quantum_ppo_rlm import QuantumPPORLModule, all_finite, non_finite_parameters
from rllib_quantum.modules.stacked_multi_rlm import STACKED_OUTPUTS

DIAGNOSTICS = ("weights_grad_norm", "readout_abs_mean", "input_scale_mean", "output_scale_mean")
FISHER_ROWS_STATE = "natural_gradient_rows"  # learner state: each module's Fisher-row generator


def _circuit_name(path: str) -> str:
    """``"actor"`` -> ``"actor"``; ``"critic.0"`` -> ``"critic"`` (the module's attribute)."""
    return path.split(".")[0]


def _parameter_note(module: torch.nn.Module) -> str:
    bad = non_finite_parameters(module)
    return f"; non-finite parameters: {', '.join(bad)}" if bad else "; every parameter is finite"


def _finite_gradients(gradients_dict: ParamDict) -> bool:
    grads = [g.detach().reshape(-1) for g in gradients_dict.values() if g is not None]
    return not grads or all_finite(torch.cat(grads))


_ADAM_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable",
                         "differentiable", "fused", "decoupled_weight_decay")


def steps_together(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`step_adams_together` may step ``optimizer``: a plain ``torch.optim.Adam``, every
    param group ``fused`` or ``foreach`` (the package's optimizers; RLlib's default Adam, which
    loops over its tensors, steps itself), a float lr, no hooks."""
    return (
        type(optimizer) is torch.optim.Adam
        and all((group["fused"] or group["foreach"]) and not torch.is_tensor(group["lr"]) for group in optimizer.param_groups)
        and not optimizer._optimizer_step_pre_hooks
        and not optimizer._optimizer_step_post_hooks
    )


def step_adams_together(optimizers) -> None:
    """``optimizer.step()`` for every Adam in ``optimizers``, as one (fused or foreach) update per
    distinct set of hyperparameters (lr, betas, eps, ...) over all their param groups. Each optimizer keeps its
    own state (moments and step per parameter, created as its own ``step()`` would): the result
    equals stepping them one by one, with a few dozen torch calls instead of a few per module."""
    if not optimizers:
        return
    if torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks:
        for optimizer in optimizers:  # someone hooks every step: let each optimizer run its own
            optimizer.step()
        return
    merged: Dict[tuple, tuple] = {}
    with torch.no_grad():
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                key = tuple(group[k] for k in _ADAM_HYPERPARAMETERS)
                lists = merged.setdefault(key, ([], [], [], [], [], [], [False]))
                lists[6][0] |= optimizer._init_group(group, *lists[:6])
        for key, (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, has_complex) in merged.items():
            if not params:
                continue
            h = dict(zip(_ADAM_HYPERPARAMETERS, key))
            torch_adam.adam(
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                foreach=h["foreach"], capturable=h["capturable"], differentiable=h["differentiable"],
                fused=h["fused"], has_complex=has_complex[0], decoupled_weight_decay=h["decoupled_weight_decay"],
                amsgrad=h["amsgrad"], beta1=h["betas"][0], beta2=h["betas"][1], lr=h["lr"],
                weight_decay=h["weight_decay"], eps=h["eps"], maximize=h["maximize"],
            )


class QuantumPPOTorchLearner(FastBatchingPPOTorchLearner):
    """PPO (torch) with per-group learning rates and circuit diagnostics for quantum modules, and
    non-finite checks (loss before backward, parameters after each step) for every module."""

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        module = self._module[module_id].unwrapped()
        if not hasattr(module, "parameter_groups"):
            return super().configure_optimizers_for_module(module_id, config)
        # One Adam per module, one param group per parameter group (group "name", "lr_multiplier"),
        # fused (one kernel per tensor; on CPU 4x faster than foreach, which reads each step count
        # back to Python); the learner steps all such Adams together (step_adams_together).
        multipliers = module.lr_multipliers
        groups = [
            {"params": params, "name": group, "lr_multiplier": multipliers[group]}
            for group, params in module.parameter_groups().items()
            if params and multipliers[group] != 0
        ]
        if not groups:
            return
        self.register_optimizer(
            module_id=module_id,
            optimizer_name=DEFAULT_OPTIMIZER,
            optimizer=torch.optim.Adam(groups, fused=True),
            params=[p for g in groups for p in g["params"]],
            lr_or_lr_schedule=config.lr,
        )

    @staticmethod
    @override(TorchLearner)
    def _set_optimizer_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
        # RLlib sets PPO's lr, or its schedule's current value as a 0-d tensor: a float here, since
        # torch's foreach Adam refuses a tensor lr. Each group runs at lr x multiplier.
        lr = float(lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_multiplier", 1.0)

    @override(Learner)
    def build(self) -> None:
        super().build()
        self._num_optimizer_steps = 0
        self._pending_diagnostics: Dict[tuple, list] = {}
        self._pending_group_metrics: Dict[tuple, tuple] = {}
        self._fishers: Dict[ModuleID, torch.Tensor] = {}  # natural-gradient modules' Fisher of this update
        self._fisher_due = True  # estimate them on the next minibatch (the first of an update)
        self._natural_steps: Dict[ModuleID, list] = {}  # (KL estimate, norm) of each step, logged per update
        self._fisher_rows: Dict[ModuleID, torch.Generator] = {}  # per module: which rows estimate its Fisher
        safety.clear()  # a report left by an earlier run in this scope is not ours
        # Quantum modules built from a spec the package did not write learn their id here (env
        # runners' copies keep "<unnamed>" in their errors then; our spec builders set it everywhere).
        for module_id, module in self.module.items():
            module = module.unwrapped()
            if hasattr(module, "quantum_layers") and getattr(module, "module_id", None) is None:
                module.module_id = module_id
        # Read-out saturation is measured where the circuits run: a forward hook on each layer of
        # the modules this learner trains (env runners never get these hooks).
        self._readouts: Dict[ModuleID, Dict[str, torch.Tensor]] = {}
        for module_id, module in self.module.items():
            module = module.unwrapped()
            if not hasattr(module, "quantum_layers"):
                continue
            store = self._readouts.setdefault(module_id, {})
            for path, layer in module.quantum_layers().items():
                layer.register_forward_hook(self._readout_hook(store, _circuit_name(path)))

    @staticmethod
    def _readout_hook(store: Dict[str, torch.Tensor], name: str):
        def hook(layer, inputs, output):
            if torch.is_grad_enabled():  # training forward passes only
                expvals = output.detach()
                if layer.output_scale is not None:
                    expvals = expvals / layer.output_scale.detach()
                store[name] = expvals.abs().mean()

        return hook

    @override(Learner)
    def update(self, *args, **kwargs):
        # A remote env runner that hit a nan/inf was ended by RLlib's fault tolerance; stop here.
        safety.raise_if_reported()
        return super().update(*args, **kwargs)

    @override(Learner)
    def compute_losses(self, *, fwd_out: Dict[str, Any], batch: Dict[str, Any]) -> Dict[str, Any]:
        # Each stacked group of quantum modules gets PPO's loss as one batched computation; every
        # other module (classical, alone, unequal rows, masks, ...) PPOTorchLearner's own.
        if self._fisher_due:
            self._estimate_fishers(fwd_out, batch)
            self._fisher_due = False
        groups = self._loss_groups(fwd_out, batch)
        grouped = {mid for group in groups for mid in group}
        # A module that falls back to RLlib's loss in this minibatch has its metrics logged by it:
        # values an earlier minibatch left pending must not overwrite them.
        for pending in [g for g in self._pending_group_metrics if not grouped.issuperset(g) and set(g) & set(fwd_out)]:
            del self._pending_group_metrics[pending]
        losses = super().compute_losses(fwd_out={m: o for m, o in fwd_out.items() if m not in grouped}, batch=batch)
        for group in groups:
            losses.update(self._group_losses(group, fwd_out, batch))
        return {mid: losses[mid] for mid in fwd_out}

    def _loss_groups(self, fwd_out: Dict[str, Any], batch: Dict[str, Any]) -> List[List[ModuleID]]:
        """The module groups whose PPO loss runs batched: stacked groups (same circuit, encoder and
        heads; :meth:`StackedQuantumMultiRLModule.stack_groups`) of two or more modules with the same
        rows, loss masks in all batches or none, embeddings in ``fwd_out`` and the same PPO loss
        settings (critic on)."""
        if not hasattr(self.module, "stack_groups"):
            return []
        out = []
        for group in self.module.stack_groups(list(fwd_out)):
            if len(group) < 2:
                continue
            settings = {self._loss_settings(mid) for mid in group}
            rows = {len(batch[mid][Columns.ACTIONS]) for mid in group}
            masks = {Columns.LOSS_MASK in batch[mid] for mid in group}
            if (
                len(settings) == 1 and next(iter(settings))[-1] and len(rows) == 1 and len(masks) == 1
                and all(Columns.EMBEDDINGS in fwd_out[mid] for mid in group)
            ):
                out.append(group)
        return out

    def _loss_settings(self, module_id: ModuleID) -> tuple:
        config = self.config.get_config_for_module(module_id)
        return config.clip_param, config.vf_clip_param, config.vf_loss_coeff, config.use_kl_loss, config.use_critic

    def _group_losses(self, group: List[ModuleID], fwd_out: Dict[str, Any], batch: Dict[str, Any]) -> Dict[str, Any]:
        """``PPOTorchLearner.compute_loss_for_module`` for every module of ``group`` at once, on
        ``(M, B, ...)`` stacks of their batches (the critic as one batched MLP): the same terms, the
        same per-module metrics, each module's own loss (a view of one ``(M,)`` tensor)."""
        config = self.config.get_config_for_module(group[0])
        module = self.module[group[0]].unwrapped()

        def stack(source, column):
            return torch.stack([source[mid][column] for mid in group])

        # PPO's possibly_masked_mean per row of the stack (RLlib masks the episodes' artificial last step)
        if Columns.LOSS_MASK in batch[group[0]]:
            mask = stack(batch, Columns.LOSS_MASK)
            num_valid = mask.sum(1)

            def masked_mean(x):
                return torch.where(mask, x, 0.0).sum(1) / num_valid
        else:

            def masked_mean(x):
                return x.mean(1)

        shared = fwd_out[group[0]].get(STACKED_OUTPUTS)  # the stacked module's unsliced outputs
        if shared is not None and shared.group == tuple(group) and len(shared.logits[0]) == len(batch[group[0]][Columns.ACTIONS]):
            logits, embeddings = shared.logits, shared.embeddings
        else:
            logits, embeddings = stack(fwd_out, Columns.ACTION_DIST_INPUTS), stack(fwd_out, Columns.EMBEDDINGS)
        curr_dist = module.get_train_action_dist_cls().from_logits(logits)
        logp_ratio = torch.exp(curr_dist.logp(stack(batch, Columns.ACTIONS)) - stack(batch, Columns.ACTION_LOGP))
        if config.use_kl_loss:
            prev_dist = module.get_exploration_action_dist_cls().from_logits(stack(batch, Columns.ACTION_DIST_INPUTS))
            mean_kl_loss = masked_mean(prev_dist.kl(curr_dist))
        else:
            mean_kl_loss = torch.zeros(len(group), device=logp_ratio.device)
        curr_entropy = curr_dist.entropy()
        advantages = stack(batch, Postprocessing.ADVANTAGES)
        surrogate_loss = torch.min(
            advantages * logp_ratio, advantages * torch.clamp(logp_ratio, 1 - config.clip_param, 1 + config.clip_param)
        )
        values = self.module.stacked_values(group, embeddings)
        value_targets = stack(batch, Postprocessing.VALUE_TARGETS)
        vf_loss = torch.pow(values - value_targets, 2.0)
        vf_loss_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
        entropy_coeffs = torch.tensor(
            [float(self.entropy_coeff_schedulers_per_module[mid].get_current_value()) for mid in group],
            dtype=curr_entropy.dtype, device=curr_entropy.device,
        )
        total_loss = masked_mean(-surrogate_loss + config.vf_loss_coeff * vf_loss_clipped - entropy_coeffs[:, None] * curr_entropy)
        if config.use_kl_loss:
            total_loss = total_loss + torch.stack([self.curr_kl_coeffs_per_module[mid] for mid in group]) * mean_kl_loss
        # RLlib's explained_variance, per row of the stack.
        explained_var = torch.clamp(
            1 - torch.var(value_targets - values, dim=1) / (torch.var(value_targets, dim=1) + SMALL_NUMBER), min=-1.0
        )
        metrics = {
            POLICY_LOSS_KEY: -masked_mean(surrogate_loss),
            VF_LOSS_KEY: masked_mean(vf_loss_clipped),
            LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: masked_mean(vf_loss),
            LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_var,  # unmasked, as RLlib's
            ENTROPY_KEY: masked_mean(curr_entropy),
            LEARNER_RESULTS_KL_KEY: mean_kl_loss,
        }
        # Logged once per update, from the last minibatch (see _log_group_metrics): RLlib logs these
        # with window=1, so only the last minibatch's values would reach the results anyway.
        self._pending_group_metrics[tuple(group)] = (tuple(metrics), torch.stack(list(metrics.values())).detach())
        return dict(zip(group, total_loss.unbind(0)))

    def _log_group_metrics(self) -> None:
        """The batched loss's six metrics per module, as ``PPOTorchLearner`` logs them (window 1),
        from the last minibatch of this update: one read per stacked group."""
        for group, (keys, values) in self._pending_group_metrics.items():
            rows = values.tolist()  # (metrics, modules)
            for m, mid in enumerate(group):
                self.metrics.log_dict({key: row[m] for key, row in zip(keys, rows)}, key=mid, window=1)
        self._pending_group_metrics.clear()

    # ---- natural-gradient steps (model_config["natural_gradient"]) ---------------------------------
    def _natural_gradient_config(self, module_id: ModuleID):
        config = getattr(self.module[module_id].unwrapped(), "quantum_config", None)
        return None if config is None else config.natural_gradient

    def _estimate_fishers(self, fwd_out: Dict[str, Any], batch: Dict[str, Any]) -> None:
        """Each natural-gradient module's Fisher matrix from ``fisher_rows`` random states of this
        minibatch (averaged over learners when there are several)."""
        self._fishers = {}
        for module_id, out in fwd_out.items():
            config = self._natural_gradient_config(module_id)
            if config is None or Columns.EMBEDDINGS not in out:
                continue
            embeddings = out[Columns.EMBEDDINGS].detach()
            if module_id not in self._fisher_rows:  # seeded by the module id: the draws do not depend on module order
                self._fisher_rows[module_id] = torch.Generator().manual_seed(zlib.crc32(str(module_id).encode()))
            module = self.module[module_id].unwrapped()
            # a mirrored module's embeddings are its rows, then their mirror images: draw rows, take both
            states = len(embeddings) if module.mirror is None else len(embeddings) // 2
            draw = torch.randperm(states, generator=self._fisher_rows[module_id])
            rows = draw[: config.fisher_rows].to(embeddings.device)
            observations = None
            if module.mask_keys is not None:  # the rows' action masks
                observations = {Columns.OBS: {k: v[rows] for k, v in batch[module_id][Columns.OBS].items()}}
            picked = rows if module.mirror is None else torch.cat([rows, rows + states])
            fisher = natural_gradient.fisher(module, embeddings[picked], observations)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(fisher)
                fisher /= torch.distributed.get_world_size()
            self._fishers[module_id] = fisher

    @override(Learner)
    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        # The Fisher rows' draws travel with the optimizer state: a restored run draws what it would have.
        if self._fisher_rows and self._check_component(COMPONENT_OPTIMIZER, components, not_components):
            state[FISHER_ROWS_STATE] = {mid: g.get_state() for mid, g in self._fisher_rows.items()}
        return state

    @override(Learner)
    def set_state(self, state) -> None:
        super().set_state(state)
        for module_id, generator_state in state.get(FISHER_ROWS_STATE, {}).items():
            self._fisher_rows[module_id] = torch.Generator()
            self._fisher_rows[module_id].set_state(generator_state)

    def _lr_factor(self, module_id: ModuleID) -> float:
        """PPO's current lr over its initial one (1 for a constant lr)."""
        lr = self.config.get_config_for_module(module_id).lr
        initial = float(lr[0][1]) if isinstance(lr, (list, tuple)) else float(lr)
        for group in self.get_optimizer(module_id).param_groups if self._module_optimizers.get(module_id) else []:
            if group.get("lr_multiplier", 1.0) > 0 and initial > 0:
                return float(group["lr"]) / group.get("lr_multiplier", 1.0) / initial
        return 1.0

    def _natural_gradient_steps(self, gradients_dict: ParamDict) -> None:
        """A natural-gradient step for each natural-gradient module's actor parameters; their
        gradients are then taken out, so that Adam steps only the rest."""
        for module_id, fisher in self._fishers.items():
            module = self.module[module_id].unwrapped()
            params = natural_gradient.actor_parameters(module)
            refs = [self.get_param_ref(p) for _, p, _ in params]
            grads = [gradients_dict.get(ref) for ref in refs]
            if all(g is None for g in grads):  # not trained in this minibatch
                continue
            config = self._natural_gradient_config(module_id)
            g = torch.cat([(torch.zeros_like(p) if grad is None else grad).reshape(-1) for grad, (_, p, _) in zip(grads, params)])
            step = natural_gradient.natural_step(fisher, g, config.kl * self._lr_factor(module_id) ** 2, config.damping)
            if not all_finite(step):
                raise FloatingPointError(
                    f"module {module_id!r}: non-finite natural-gradient step at optimizer step "
                    f"{self._num_optimizer_steps + 1} of this learner" + _parameter_note(module)
                )
            with torch.no_grad():
                offset = 0
                for (_, p, group), ref in zip(params, refs):
                    part = step[offset: offset + p.numel()].view_as(p)
                    offset += p.numel()
                    p.add_(part * module.lr_multipliers[group])  # 1 unless a multiplier scales the group
                    gradients_dict.pop(ref, None)
                    p.grad = None
            s = step.double()
            self._natural_steps.setdefault(module_id, []).append(torch.stack([0.5 * s @ fisher @ s, s.norm()]))

    def _log_natural_steps(self) -> None:
        for module_id, steps in self._natural_steps.items():
            kl, norm = torch.stack(steps).mean(0).tolist()
            self.metrics.log_value((module_id, "quantum/actor_natural_step_kl"), kl, reduce="mean", window=1)
            self.metrics.log_value((module_id, "quantum/actor_natural_step_norm"), norm, reduce="mean", window=1)
        self._natural_steps.clear()

    @override(TorchLearner)
    def compute_gradients(self, loss_per_module, **kwargs) -> ParamDict:
        losses = [loss.detach().reshape(-1) for loss in loss_per_module.values() if torch.is_tensor(loss)]
        if losses and not all_finite(torch.cat(losses)):  # one reduction for every module's loss
            for module_id, loss in loss_per_module.items():
                if torch.is_tensor(loss) and not all_finite(loss):
                    raise FloatingPointError(
                        f"module {module_id!r}: non-finite loss ({loss.detach().flatten()[0].item()}) before backward, "
                        f"optimizer step {self._num_optimizer_steps + 1} of this learner"
                        + _parameter_note(self.module[module_id].unwrapped())
                    )
        grads = super().compute_gradients(loss_per_module, **kwargs)
        with torch.no_grad():
            self._keep_diagnostics(list(loss_per_module))
        return grads

    @override(TorchLearner)
    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        if self._fishers:
            self._natural_gradient_steps(gradients_dict)
        optimizers = [self.get_optimizer(mid, name) for mid, names in self._module_optimizers.items() for name in names]
        if self._grad_scalers is None and self._lr_scheduler_classes is None and _finite_gradients(gradients_dict):
            # RLlib's path minus its per-tensor finite checks (one check above): set the gradients,
            # then the package's fused Adams take one step together, every other optimizer its own.
            for pid, grad in gradients_dict.items():
                self._params[pid].grad = grad
            alone = [o for o in optimizers if not steps_together(o)]
            step_adams_together([o for o in optimizers if o not in alone])
            for optimizer in alone:
                optimizer.step()
        else:  # mixed precision, torch lr schedulers or a non-finite gradient: RLlib's own path
            super().apply_gradients(gradients_dict)
        self._num_optimizer_steps += 1
        with torch.no_grad():  # every parameter an optimizer (or a natural step) may have changed
            params = [p.reshape(-1) for p in self._params.values() if p.is_floating_point()]
            if not params or all_finite(torch.cat(params)):  # one reduction for every module
                return
            for module_id in self._module_optimizers:
                bad = non_finite_parameters(self.module[module_id].unwrapped())
                if bad:
                    raise FloatingPointError(
                        f"module {module_id!r}: non-finite parameter(s) {', '.join(bad)} "
                        f"after optimizer step {self._num_optimizer_steps} of this learner"
                    )

    def _circuits(self, module_id: ModuleID) -> List[Tuple[str, QuantumLayer]]:
        """The module's circuits as (diagnostics name, layer), looked up once per module object
        (every minibatch asks; a module's circuits are fixed when it is built)."""
        module = self.module[module_id].unwrapped()
        cache = self.__dict__.setdefault("_circuits_cache", {})
        cached = cache.get(module_id)
        if cached is None or cached[0] is not module:
            layers = module.quantum_layers().items() if hasattr(module, "quantum_layers") else ()
            cached = cache[module_id] = (module, [(_circuit_name(path), layer) for path, layer in layers])
        return cached[1]

    def _keep_diagnostics(self, module_ids: List[ModuleID]) -> None:
        """Keeps this minibatch's circuit diagnostics, every module's at once, as one tensor (a few
        foreach reductions, no sync); :meth:`after_gradient_based_update` logs their means."""
        grads, inputs, outputs, readouts = [], [], [], []
        for module_id in module_ids:
            for name, layer in self._circuits(module_id):
                if layer.weights.grad is not None:
                    grads.append((module_id, f"{name}_weights_grad_norm", layer.weights.grad))
                inputs.append((module_id, f"{name}_input_scale_mean", layer.input_scale))
                if layer.output_scale is not None:
                    outputs.append((module_id, f"{name}_output_scale_mean", layer.output_scale))
                readout = self._readouts.get(module_id, {}).get(name)
                if readout is not None:
                    readouts.append((module_id, f"{name}_readout_abs_mean", readout))
        values = []
        if grads:
            values += torch._foreach_norm([g for *_, g in grads])
        for entries in (inputs, outputs):  # mean |x| = L1 norm / numel
            if entries:
                norms = torch._foreach_norm([t.detach() for *_, t in entries], 1)
                values += [v / t.numel() for v, (*_, t) in zip(norms, entries)]
        values += [r for *_, r in readouts]
        names = tuple((mid, key) for mid, key, _ in grads + inputs + outputs + readouts)
        if names:
            self._pending_diagnostics.setdefault(names, []).append(torch.stack([v.float() for v in values]))

    @override(Learner)
    def after_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        self._log_group_metrics()  # first: PPO's adaptive KL coefficient reads the logged KL below
        self._log_natural_steps()
        self._fisher_due = True  # the next update estimates its own Fisher matrices
        super().after_gradient_based_update(timesteps=timesteps)
        # Each diagnostic's mean over this update's minibatches: one read per update.
        for names, rows in self._pending_diagnostics.items():
            for (module_id, key), value in zip(names, torch.stack(rows).mean(0).tolist()):
                self.metrics.log_value((module_id, f"quantum/{key}"), value, reduce="mean", window=1)
        self._pending_diagnostics.clear()
        self._follow_inverse_temperatures(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))

    def _follow_inverse_temperatures(self, env_steps: float) -> None:
        """Sets every module's logits factor (``model_config["inverse_temperature"]``) to its value
        after ``env_steps`` and logs it as ``quantum/actor_inverse_temperature``. The weight sync
        after this update takes it to the env runners, so the next batch is sampled, and then
        trained on, with the same factor."""
        for module_id in self.module.keys():
            module = self.module[module_id].unwrapped()
            beta = getattr(module, "inverse_temperature", None)
            if isinstance(module, QuantumPPORLModule):
                schedule = module.quantum_config.inverse_temperature
            else:  # TemperedPPOTorchRLModule (other modules have neither)
                schedule = getattr(module, "inverse_temperature_schedule", None)
            if not isinstance(beta, torch.Tensor) or schedule is None:
                continue
            value = inverse_temperature_at(schedule, env_steps)
            beta.fill_(value)
            self.metrics.log_value((module_id, "quantum/actor_inverse_temperature"), value, reduce="mean", window=1)
