"""``StackedQuantumMultiRLModule``: same-shaped quantum policies evaluated as one stacked circuit call."""

from __future__ import annotations

import operator
from typing import Any, Dict, List, NamedTuple, Tuple

import gymnasium as gym
import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID

from rllib_quantum.circuits import QuantumLayer, stacked_forward
from rllib_quantum.circuits.stacking import run_stacked, stack_reason
from rllib_quantum.circuits.statevector import real_dtype_for
from rllib_quantum.modules.encoders import LinearEncoder, PadEncoder
from rllib_quantum.modules.observations import ACTION_MASK_KEY, mask_logits
from rllib_quantum.modules.quantum_ppo_rlm import QuantumPPORLModule, all_finite


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

    Vector pre-encoders and linear read-out heads run as one batched matmul per group too, and the
    finite checks once per group; observations of one vector ``Box`` space are stacked and
    flattened once per group, other spaces and CNN encoders stay per module. The
    critics of a group run as one batched pass in
    :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` 's PPO loss (:meth:`stacked_values`). Modules of other classes, circuits that
    do not stack (PennyLane devices, factored registers), mirrored modules (``model_config["mirror"]``)
    and single modules run exactly as under
    ``MultiRLModule``; a group that fails is rerun module by module, so errors name the module. Results equal per-module execution within
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
    @override(MultiRLModule)
    def add_module(self, *args, **kwargs):
        self._group_cache = {}
        return super().add_module(*args, **kwargs)

    @override(MultiRLModule)
    def remove_module(self, *args, **kwargs):
        self._group_cache = {}
        return super().remove_module(*args, **kwargs)

    def _quantum(self, module_id: ModuleID):
        """The module as a QuantumPPORLModule (unwrapped from DDP), or None."""
        module = self._rl_modules[module_id]
        module = module.unwrapped() if hasattr(module, "unwrapped") else module
        return module if isinstance(module, QuantumPPORLModule) else None

    @staticmethod
    def _stack_key(module: QuantumPPORLModule):
        return (
            module.actor.spec,
            module.quantum_config.encoder,
            module.quantum_config.input_shape,
            _shape_key(module.actor_head),
            module.log_std is not None,
            module.inverse_temperature is not None,
            module.mask_keys,
        )

    def stack_groups(self, module_ids: List[ModuleID]) -> List[List[ModuleID]]:
        """``module_ids`` split into groups that share a circuit call (order kept within a group);
        modules that stack with no other come back as groups of one. Cached per id sequence (the
        modules' shapes do not change; adding or removing a module clears the cache)."""
        cache = self.__dict__.setdefault("_group_cache", {})
        key = tuple(module_ids)
        if key not in cache:
            groups: Dict[Any, List[ModuleID]] = {}
            for mid in module_ids:
                module = self._quantum(mid)
                # a mirrored module (model_config "mirror") runs its circuit on twice its rows: alone
                alone = module is None or module.mirror is not None
                groups.setdefault(("single", mid) if alone else self._stack_key(module), []).append(mid)
            cache[key] = list(groups.values())
        return cache[key]

    def stacked_values(self, group: List[ModuleID], embeddings: torch.Tensor) -> torch.Tensor:
        """``(M, B)`` values of the group's critics on ``(M, B, n_qubits)`` embeddings, as one
        batched pass per critic layer (their ``compute_values(batch, embeddings)``, stacked); the
        finite check once for the group (a failing group is checked module by module)."""
        modules = [self._quantum(mid) for mid in group]
        cache = self.__dict__.setdefault("_group_cache", {})
        key = ("critics", tuple(group))
        if key not in cache:
            cache[key] = len({(_shape_key(m.critic), tuple(map(type, m.critic))) for m in modules}) == 1
        # same layers and shapes (cached): no per-call shape checks; else stacked_apply decides per layer
        values = stacked_apply([m.critic for m in modules], embeddings, same_shapes=cache[key]).squeeze(-1)
        if not all_finite(values):
            for m, v in zip(modules, values):
                m._check_finite(v, "value", "compute_values")
        return values

    # ---- the stacked forward pass ----------------------------------------------------------------
    def _stacked(self, batch: Dict[ModuleID, Any], method: str, **kwargs) -> Dict[ModuleID, Dict[str, Any]]:
        """``method`` (a module's forward method: ``forward_train``, ...) for every module in ``batch``."""
        where = method.lstrip("_")  # named in the modules' error messages
        out: Dict[ModuleID, Dict[str, Any]] = {}
        for group in self.stack_groups([mid for mid in batch if mid in self]):
            if len(group) > 1:
                try:
                    out.update(self._run_group(group, batch, where))
                    continue
                except FloatingPointError:
                    raise
                except Exception:  # rerun one by one: the failing module's own path names it
                    pass
            for mid in group:  # nothing to share (or a failure to attribute): each module's own pass
                out[mid] = getattr(self._rl_modules[mid], method)(batch[mid], **kwargs)
        return out

    def _same_vector_space(self, group: List[ModuleID], modules: List[QuantumPPORLModule]) -> bool:
        """Whether the group's observations are all of one non-image ``Box`` space (cached per
        group): then they are stacked first and flattened once."""
        cache = self.__dict__.setdefault("_group_cache", {})
        key = ("vector_space", tuple(group))
        if key not in cache:
            space = modules[0].flatten.space
            cache[key] = (
                isinstance(space, gym.spaces.Box) and not modules[0].flatten.image and len(space.shape) >= 1
                and all(m.flatten.space == space for m in modules[1:])
            )
        return cache[key]

    def _sampling_stack(self, group: List[ModuleID], modules: List[QuantumPPORLModule], rows: int, dtype: torch.dtype):
        """The group's :class:`_SamplingStack` for forward passes without autograd, or ``None`` where
        one does not apply (other encoders or heads, hooks, circuits that do not stack at ``rows``
        rows). Cached per group and input dtype; rebuilt when a tensor it was built from has changed."""
        cache = self.__dict__.setdefault("_group_cache", {})
        key = ("sampling", tuple(group), dtype)
        stack = cache.get(key)
        if stack is None or (stack is not False and not stack.valid()):
            stack = cache[key] = _SamplingStack.build(modules, dtype)
        return stack if stack is not False and stack.dense(rows) else None

    def _run_group(self, group: List[ModuleID], batch: Dict[ModuleID, Any], where: str) -> Dict[ModuleID, Dict[str, Any]]:
        """One group: observations, encoders, circuits and read-out heads each as one stacked call;
        the finite checks once per group (a failing group is checked module by module, so the
        error names the module)."""
        modules = [self._quantum(mid) for mid in group]
        if self._same_vector_space(group, modules):  # one flatten (and shape check) for the whole group
            raw = [torch.as_tensor(m.policy_obs(batch[mid])) for m, mid in zip(modules, group)]
            rows = [o.shape[0] for o in raw]
            stacked = _stack_padded(raw, max(rows))
            x = modules[0].flatten(stacked.reshape(-1, *stacked.shape[2:])).reshape(len(group), max(rows), -1)
            observations = None  # the rows of x, sliced only if a finite check fails
        else:
            observations = [m.flatten(m.policy_obs(batch[mid])) for m, mid in zip(modules, group)]
            rows = [len(o) for o in observations]
            x = _stack_padded(observations, max(rows))
        if not all_finite(x):
            for m, o in zip(modules, observations or [o[:n] for o, n in zip(x, rows)]):
                m._check_finite(o, "observation", where)
        # One group: same encoder kind and input shape, same head shapes (the stack key). Without
        # autograd (env runners) the group's parameters come stacked from a snapshot reused while
        # they are unchanged; else they are stacked here, every call.
        params = None if torch.is_grad_enabled() else self._sampling_stack(group, modules, max(rows), x.dtype)
        params = params or _LiveGroup(modules)
        embeddings = params.encode(x)
        logits = params.head(params.circuit(embeddings))
        if params.inverse_temperatures is not None:  # each module's own factor, (M, 1, 1)
            logits = logits * params.inverse_temperatures
        if params.log_stds is not None:  # Box actions: [means, log_stds]
            logits = torch.cat([logits, params.log_stds.expand_as(logits)], dim=-1)
        if modules[0].mask_keys is not None:  # padded rows get an all-zero mask: finite, and never read
            masks = [torch.as_tensor(batch[mid][Columns.OBS][ACTION_MASK_KEY]) for mid in group]
            logits = mask_logits(logits, _stack_padded(masks, max(rows)))
        if not all_finite(logits):
            for m, logit, n in zip(modules, logits, rows):
                m._check_finite(logit[:n], "logits", where)
        longest = logits.shape[1]
        if where != "forward_train":  # env runners: each module's logits (a view, sliced where padded)
            return {mid: {Columns.ACTION_DIST_INPUTS: logit if n == longest else logit[:n]}
                    for mid, logit, n in zip(group, logits.unbind(0), rows)}
        shared = StackedOutputs(tuple(group), logits, embeddings)
        return {mid: {Columns.ACTION_DIST_INPUTS: logit[:n], Columns.EMBEDDINGS: embedding[:n], STACKED_OUTPUTS: shared}
                for mid, logit, embedding, n in zip(group, logits, embeddings, rows)}


STACKED_OUTPUTS = "stacked_group_outputs"  # forward_train's key for a group's StackedOutputs


class StackedOutputs(NamedTuple):
    """A stacked group's ``forward_train`` outputs before they are sliced per module: ``(M, rows, ...)``
    tensors, modules in ``group`` order, rows zero-padded to the longest batch. The learner's batched
    PPO loss reads these rather than restacking the slices (no slice per module in the backward)."""

    group: Tuple[ModuleID, ...]
    logits: torch.Tensor  # action-distribution inputs
    embeddings: torch.Tensor


class _LiveGroup:
    """A group's actor parameters stacked at every call (autograd flows to each module's own)."""

    def __init__(self, modules: List[QuantumPPORLModule]):
        self.modules = modules
        self.inverse_temperatures, self.log_stds = _factor_stacks(modules)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return stacked_apply([m.encoder for m in self.modules], x, same_shapes=True)

    def circuit(self, x: torch.Tensor) -> torch.Tensor:
        return stacked_forward([m.actor for m in self.modules], x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return stacked_apply([m.actor_head for m in self.modules], x, same_shapes=True)


class _SamplingStack:
    """A group's actor parameters stacked once for forward passes without autograd (env runners).

    On an env runner the weights change only when the learner's are synced in, while every env
    step runs a forward pass; stacking each module's tensors at every call costs several small
    torch ops and attribute look-ups per module. The stack is reused while every tensor it was
    built from keeps its version counter and storage (in-place updates, ``load_state_dict``,
    ``set_state``, ``.to()`` all change one of them) and no circuit gained a forward hook; in-place
    writes through ``.data`` change neither and are not seen, as for any torch code keyed on
    versions. Vector encoders (none, linear) and read-outs (expectation, linear) only; anything
    else runs :class:`_LiveGroup`.
    """

    def __init__(self, modules, tensors, hooks, encoder, head, layers_first, scales, output_scales, operators):
        first = modules[0]
        self.tensors, self.hooks = tensors, hooks
        self.versions = self._versions(tensors)
        self.encoder, self.head_weights, self.first_layer = encoder, head, layers_first
        self.pad = first.encoder if isinstance(first.encoder, PadEncoder) else None
        self.scales, self.output_scales, self.operators = scales, output_scales, operators
        with torch.no_grad():
            self.inverse_temperatures, self.log_stds = _factor_stacks(modules)

    @classmethod
    def build(cls, modules: List[QuantumPPORLModule], dtype: torch.dtype):
        """The stack, or ``False`` where it does not apply."""
        first = modules[0]
        layers = [m.actor for m in modules]
        if not isinstance(first.encoder, (PadEncoder, LinearEncoder)) or not isinstance(first.actor_head, (nn.Linear, nn.Identity)):
            return False
        if stack_reason(layers) is not None or any(layer._forward_hooks for layer in layers):
            return False
        parts = [m.encoder for m in modules] + layers + [m.actor_head for m in modules]
        tensors = [t for part in parts for t in (*part.parameters(), *part.buffers())]
        tensors += [t for m in modules for t in (m.inverse_temperature, m.log_std) if t is not None]
        hooks = [d for layer in layers for d in (layer._forward_hooks, layer._forward_pre_hooks, layer._forward_hooks_with_kwargs)]
        with torch.no_grad():
            encoder = None if isinstance(first.encoder, PadEncoder) else _linear_stack([m.encoder.linear for m in modules])
            head = None if isinstance(first.actor_head, nn.Identity) else _linear_stack([m.actor_head for m in modules])
            scales = torch.stack([layer.input_scale for layer in layers])
            output_scales = None if first.actor.output_scale is None else torch.stack([layer.output_scale for layer in layers]).unsqueeze(1)
            rdtype = real_dtype_for(torch.empty(0, dtype=dtype), first.actor.weights, first.actor.input_scale)
            operators = torch.stack([layer._cached_weights(rdtype, True).layers for layer in layers])
        return cls(modules, tuple(tensors), hooks, encoder, head, first.actor, scales, output_scales, operators)

    @staticmethod
    def _versions(tensors) -> tuple:
        return list(map(_VERSION, tensors)), list(map(torch.Tensor.data_ptr, tensors))

    def valid(self) -> bool:
        """Whether every tensor is as it was at build time and no hook was added."""
        return not any(self.hooks) and self._versions(self.tensors) == self.versions

    def dense(self, rows: int) -> bool:
        return self.first_layer._fast.prefers_dense(rows, False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return self.pad(x)
        return torch.tanh(torch.baddbmm(self.encoder[1], x, self.encoder[0]))

    def circuit(self, x: torch.Tensor) -> torch.Tensor:
        return run_stacked(self.first_layer, x, self.scales, self.output_scales, operators=self.operators)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.head_weights is None else torch.baddbmm(self.head_weights[1], x, self.head_weights[0])


_VERSION = operator.attrgetter("_version")


def _factor_stacks(modules: List[QuantumPPORLModule]):
    """The modules' logits factors ``(M, 1, 1)`` and Gaussian log-stds ``(M, 1, n)``, each ``None``
    where the modules have none."""
    first = modules[0]
    betas = None if first.inverse_temperature is None else torch.stack([m.inverse_temperature for m in modules]).view(-1, 1, 1)
    log_stds = None if first.log_std is None else torch.stack([m.log_std for m in modules]).unsqueeze(1)
    return betas, log_stds


def _linear_stack(linears: List[nn.Linear]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(M, in, out)`` transposed weights and ``(M, 1, out)`` biases (zeros without bias) of equal-shaped linears."""
    weight = torch.stack([layer.weight for layer in linears]).transpose(1, 2)
    bias = torch.stack([layer.bias if layer.bias is not None else torch.zeros(layer.out_features) for layer in linears])
    return weight, bias.unsqueeze(1)


_ELEMENTWISE = (nn.Identity, nn.Tanh, nn.ReLU, nn.Sigmoid)


def _shape_key(module: nn.Module):
    """What decides whether modules stack in :func:`stacked_apply`: class and parameter shapes."""
    return (type(module), tuple((name, tuple(p.shape)) for name, p in module.named_parameters()), getattr(module, "pad", None))


def _stack_padded(tensors: List[torch.Tensor], rows: int) -> torch.Tensor:
    """``(M, rows, ...)``: each tensor zero-padded to ``rows`` rows (zeros keep every pass finite)."""
    return torch.stack([t if len(t) == rows else nn.functional.pad(t, (0, 0) * (t.dim() - 1) + (0, rows - len(t))) for t in tensors])


def _stacked_linear(linears: List[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    if linears[0].bias is None:
        return torch.bmm(x, torch.stack([layer.weight for layer in linears]).transpose(1, 2))
    weight, bias = _linear_stack(linears)
    return torch.baddbmm(bias, x, weight)


def stacked_apply(modules: List[nn.Module], x: torch.Tensor, same_shapes: bool = False) -> torch.Tensor:
    """``torch.stack([modules[m](x[m]) for m in range(M)])`` for ``(M, B, ...)`` inputs, as one
    batched matmul for ``nn.Linear`` and the package's vector encoders (pad, ``tanh(linear)``) of
    equal shapes, layer by layer for ``nn.Sequential`` s of those and elementwise activations
    (critic MLPs), one stacked circuit call for ``QuantumLayer`` s; anything else (CNN encoders,
    mixed shapes) module by module. ``same_shapes``: the caller knows the modules have equal
    classes and shapes (skips the check)."""
    first = modules[0]
    if isinstance(first, QuantumLayer) and x.dim() == 3:
        return stacked_forward(modules, x)  # stacks what it can, else layer by layer
    if same_shapes or all(_shape_key(m) == _shape_key(first) for m in modules[1:]):
        if isinstance(first, _ELEMENTWISE):
            return first(x)
        if isinstance(first, nn.Sequential) and x.dim() == 3 and all(len(m) == len(first) for m in modules):
            for layers in zip(*modules):  # e.g. critic MLPs, layer by layer (each layer's kind checked unless vouched for)
                x = stacked_apply(list(layers), x, same_shapes=same_shapes)
            return x
        if isinstance(first, PadEncoder):
            return first(x)
        if isinstance(first, nn.Linear) and x.dim() == 3:
            return _stacked_linear(modules, x)
        if isinstance(first, LinearEncoder) and x.dim() == 3:
            return torch.tanh(_stacked_linear([m.linear for m in modules], x))
    return torch.stack([m(xm) for m, xm in zip(modules, x)])


def is_plain_multi_rl_module_class(cls: type) -> bool:
    """Whether ``cls`` is RLlib's own ``MultiRLModule`` (or unset): a spec the package may switch to
    :class:`StackedQuantumMultiRLModule` without overriding a user's subclass."""
    return cls is None or cls is MultiRLModule

