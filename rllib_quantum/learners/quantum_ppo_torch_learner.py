"""``QuantumPPOTorchLearner``: RLlib's PPO torch learner plus what training a circuit needs.

Two additions, both inert for modules without circuits (RLlib's classical modules train exactly as
under ``PPOTorchLearner``), and a numerical-safety check for every module:

* **Per-group learning rates.** A :class:`~rllib_quantum.modules.QuantumPPORLModule` splits its
  trainable parameters into ``circuit`` (variational weights), ``input_scale``, ``output_scale``
  and ``classical`` (encoder, linear read-out head, critic). The module's Adam optimizer (RLlib's
  ``default_optimizer``) has one param group per parameter group (its ``"name"``), whose learning
  rate is PPO's ``lr`` (a fixed value or a schedule) times the group's entry in
  ``model_config["lr_multipliers"]`` (its ``"lr_multiplier"``); a multiplier of 0 freezes the group.
* **Circuit diagnostics**, logged per module under ``learners/<module_id>/quantum/...`` (so Tune
  writes them to TensorBoard and ``progress.csv``), for every circuit of the module (``actor``,
  and ``critic`` when it is quantum), each the mean over the minibatches of an update (kept as
  tensors while training: one read per module and update):

  ===============================  =============================================================
  ``quantum/<c>_weights_grad_norm``  L2 norm of the loss gradient w.r.t. the circuit weights (a
                                     vanishing norm on a learning plateau hints at a barren plateau)
  ``quantum/<c>_readout_abs_mean``   mean ``|<Z_i>|`` over the batch and read-out wires, before
                                     output scaling (near 1: saturated read-outs, tiny gradients)
  ``quantum/<c>_input_scale_mean``   mean ``|input scaling|`` (angles per unit of encoder output)
  ``quantum/<c>_output_scale_mean``  mean ``|output scaling|`` (logit range per unit of ``<Z>``)
  ===============================  =============================================================

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

from typing import Any, Dict

import torch

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.learner.learner import DEFAULT_OPTIMIZER, Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, ParamDict

from rllib_quantum import safety
from rllib_quantum.modules.quantum_ppo_rlm import all_finite, non_finite_parameters

DIAGNOSTICS = ("weights_grad_norm", "readout_abs_mean", "input_scale_mean", "output_scale_mean")


def _circuit_name(path: str) -> str:
    """``"actor"`` -> ``"actor"``; ``"critic.0"`` -> ``"critic"`` (the module's attribute)."""
    return path.split(".")[0]


def _parameter_note(module: torch.nn.Module) -> str:
    bad = non_finite_parameters(module)
    return f"; non-finite parameters: {', '.join(bad)}" if bad else "; every parameter is finite"


class QuantumPPOTorchLearner(PPOTorchLearner):
    """PPO (torch) with per-group learning rates and circuit diagnostics for quantum modules, and
    non-finite checks (loss before backward, parameters after each step) for every module."""

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        module = self._module[module_id].unwrapped()
        if not hasattr(module, "parameter_groups"):
            return super().configure_optimizers_for_module(module_id, config)
        # One Adam per module, one param group per parameter group (group "name", "lr_multiplier"):
        # one optimizer step per module and minibatch, its tensors updated together (foreach).
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
            optimizer=torch.optim.Adam(groups, foreach=True),
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

    @override(TorchLearner)
    def compute_gradients(self, loss_per_module, **kwargs) -> ParamDict:
        for module_id, loss in loss_per_module.items():
            if torch.is_tensor(loss) and not all_finite(loss):
                raise FloatingPointError(
                    f"module {module_id!r}: non-finite loss ({loss.detach().flatten()[0].item()}) before backward, "
                    f"optimizer step {self._num_optimizer_steps + 1} of this learner"
                    + _parameter_note(self.module[module_id].unwrapped())
                )
        grads = super().compute_gradients(loss_per_module, **kwargs)
        with torch.no_grad():
            for module_id in loss_per_module:
                module = self.module[module_id].unwrapped()
                if hasattr(module, "quantum_layers"):
                    self._log_diagnostics(module_id, module)
        return grads

    @override(TorchLearner)
    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        super().apply_gradients(gradients_dict)
        self._num_optimizer_steps += 1
        with torch.no_grad():
            for module_id in self._module_optimizers:
                module = self.module[module_id].unwrapped()
                params = [p.detach().reshape(-1) for p in module.parameters() if p.is_floating_point()]
                if params and not all_finite(torch.cat(params)):  # one reduction for all of them
                    raise FloatingPointError(
                        f"module {module_id!r}: non-finite parameter(s) {', '.join(non_finite_parameters(module))} "
                        f"after optimizer step {self._num_optimizer_steps} of this learner"
                    )

    def _log_diagnostics(self, module_id: ModuleID, module) -> None:
        """Keeps this minibatch's diagnostics as one tensor; logged once per update (no sync here)."""
        values: Dict[str, torch.Tensor] = {}
        for path, layer in module.quantum_layers().items():
            name = _circuit_name(path)
            if layer.weights.grad is not None:
                values[f"{name}_weights_grad_norm"] = layer.weights.grad.norm()
            values[f"{name}_input_scale_mean"] = layer.input_scale.abs().mean()
            if layer.output_scale is not None:
                values[f"{name}_output_scale_mean"] = layer.output_scale.abs().mean()
            readout = self._readouts.get(module_id, {}).get(name)
            if readout is not None:
                values[f"{name}_readout_abs_mean"] = readout
        if values:
            self._pending_diagnostics.setdefault((module_id, tuple(values)), []).append(torch.stack(list(values.values())))

    @override(Learner)
    def after_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        # Each diagnostic's mean over this update's minibatches: one read per module and update.
        for (module_id, keys), rows in self._pending_diagnostics.items():
            for key, value in zip(keys, torch.stack(rows).mean(0).tolist()):
                self.metrics.log_value((module_id, f"quantum/{key}"), value, reduce="mean", window=1)
        self._pending_diagnostics.clear()
