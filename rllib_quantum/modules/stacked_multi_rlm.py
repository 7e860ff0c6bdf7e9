"""``StackedQuantumMultiRLModule``: same-shaped quantum policies evaluated as one stacked circuit call."""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID

from rllib_quantum.circuits import stacked_forward
from rllib_quantum.modules.quantum_ppo_rlm import QuantumPPORLModule


class StackedQuantumMultiRLModule(MultiRLModule):
    """A ``MultiRLModule`` whose quantum policies of one shape share each circuit evaluation.

    With independent policies (one per agent) every module runs its own circuit, so a plain
    ``MultiRLModule`` issues the same few dozen small torch ops once per agent on every env step
    and every learner minibatch, and its cost grows linearly with the agent count. This class
    groups the :class:`QuantumPPORLModule` s of a forward pass whose actor circuits have the same
    :class:`~rllib_quantum.circuits.CircuitSpec` and read-out, and evaluates each group with
    :func:`~rllib_quantum.circuits.stacked_forward`: the modules' weights are stacked at call time,
    so each module keeps its own parameters, its own optimizer state (the learner still sees one
    module per policy), its own checkpoint state, and parameter averaging works unchanged.

    Observation flattening, pre-encoders, read-out heads and checks stay per module (cheap next to
    the circuit); the classical critic is called per module by PPO's loss. Modules of other
    classes, circuits that do not stack (PennyLane devices, factored registers) and single
    modules run exactly as under ``MultiRLModule``. Results equal per-module execution within
    float32 rounding (``tests/test_stacking.py``).

    :func:`rllib_quantum.strategies.multi_module_spec` and
    :func:`rllib_quantum.with_quantum_policies` use it by default; to use it yourself::

        MultiRLModuleSpec(multi_rl_module_class=StackedQuantumMultiRLModule, rl_module_specs={...})

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
        >>> from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        >>> spec = RLModuleSpec(module_class=QuantumPPORLModule,
        ...     observation_space=gym.spaces.Box(-1, 1, (5,), np.float32), action_space=gym.spaces.Discrete(3),
        ...     model_config={"circuit": {"n_qubits": 5, "n_layers": 2}})
        >>> multi = MultiRLModuleSpec(multi_rl_module_class=StackedQuantumMultiRLModule,
        ...     rl_module_specs={"a": spec, "b": spec}).build()
        >>> out = multi.forward_train({"a": {Columns.OBS: torch.rand(4, 5)}, "b": {Columns.OBS: torch.rand(6, 5)}})
        >>> out["a"][Columns.ACTION_DIST_INPUTS].shape, out["b"][Columns.ACTION_DIST_INPUTS].shape
        (torch.Size([4, 3]), torch.Size([6, 3]))
        >>> multi.stack_groups(["a", "b"])
        [['a', 'b']]
    """

    @override(MultiRLModule)
    def _forward_inference(self, batch: Dict[ModuleID, Any], **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        with torch.no_grad():
            return self._stacked(batch, "forward_inference", **kwargs)

    @override(MultiRLModule)
    def _forward_exploration(self, batch: Dict[ModuleID, Any], **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        with torch.no_grad():
            return self._stacked(batch, "forward_exploration", **kwargs)

    @override(MultiRLModule)
    def _forward_train(self, batch: Dict[ModuleID, Any], **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        return self._stacked(batch, "forward_train", **kwargs)

    @override(MultiRLModule)
    def _forward(self, batch: Dict[ModuleID, Any], **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        return self._stacked(batch, "_forward", **kwargs)

    # ---- grouping --------------------------------------------------------------------------------
    def _quantum(self, module_id: ModuleID):
        """The module as a QuantumPPORLModule (unwrapped from DDP), or None."""
        module = self._rl_modules[module_id]
        module = module.unwrapped() if hasattr(module, "unwrapped") else module
        return module if isinstance(module, QuantumPPORLModule) else None

    @staticmethod
    def _stack_key(module: QuantumPPORLModule):
        head = module.actor_head
        return (
            module.actor.spec,
            type(head),
            tuple(head.weight.shape) if isinstance(head, nn.Linear) else None,
            module.log_std is not None,
        )

    def stack_groups(self, module_ids: List[ModuleID]) -> List[List[ModuleID]]:
        """``module_ids`` split into groups that share a circuit call (order kept within a group);
        modules that stack with no other come back as groups of one."""
        groups: Dict[Any, List[ModuleID]] = {}
        for mid in module_ids:
            module = self._quantum(mid)
            key = ("single", mid) if module is None else self._stack_key(module)
            groups.setdefault(key, []).append(mid)
        return list(groups.values())

    # ---- the stacked forward pass ----------------------------------------------------------------
    def _stacked(self, batch: Dict[ModuleID, Any], method: str, **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        """``method`` (a module's forward method: ``forward_train``, ...) for every module in ``batch``."""
        where = method.lstrip("_")  # named in the modules' error messages
        out: Dict[ModuleID, Dict[str, Any]] = {}
        for group in self.stack_groups([mid for mid in batch if mid in self]):
            if len(group) == 1:  # nothing to share: the module's own forward pass
                mid = group[0]
                out[mid] = getattr(self._rl_modules[mid], method)(batch[mid], **kwargs)
                continue
            modules = [self._quantum(mid) for mid in group]
            embeddings = [m.embed(batch[mid], where) for m, mid in zip(modules, group)]
            rows = [len(e) for e in embeddings]
            width = max(rows)
            padded = torch.stack([nn.functional.pad(e, (0, 0, 0, width - len(e))) for e in embeddings])
            readouts = stacked_forward([m.actor for m in modules], padded)
            for m, mid, e, n, r in zip(modules, group, embeddings, rows, readouts):
                out[mid] = {Columns.ACTION_DIST_INPUTS: m.dist_inputs(r[:n], where)}
                if where == "forward_train":
                    out[mid][Columns.EMBEDDINGS] = e
        return out


def is_plain_multi_rl_module_class(cls: type) -> bool:
    """Whether ``cls`` is RLlib's own ``MultiRLModule`` (or unset): a spec the package may switch to
    :class:`StackedQuantumMultiRLModule` without overriding a user's subclass."""
    return cls is None or cls is MultiRLModule

