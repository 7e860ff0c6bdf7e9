"""``QuantumPPORLModule``: a PPO actor-critic whose actor is a variational quantum circuit."""

from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchDiagGaussian,
    TorchMultiCategorical,
)
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import TensorType

from rllib_quantum import safety
from rllib_quantum.circuits import QuantumLayer
from rllib_quantum.errors import reraise_under
from rllib_quantum.modules.encoders import build_encoder, mlp
from rllib_quantum.modules.observations import (
    ACTION_MASK_KEY,
    ObservationFlattener,
    mask_logits,
    policy_observation,
    split_action_mask,
)
from rllib_quantum.modules.model_config import PARAMETER_GROUPS, QuantumModelConfig, inverse_temperature_at


def init_seed(seed: int, module_id: Optional[str]) -> int:
    """The torch seed of a module's parameter init: a hash of the experiment seed and the module id,
    so it depends on neither the order RLlib builds modules in nor on what drew from torch before."""
    digest = hashlib.sha256(f"{int(seed)}/{module_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of ``tensor`` is finite. A nan or inf makes the sum non-finite, so one
    reduction answers (3.5x faster than ``torch.isfinite(t).all()`` on small tensors); only a sum
    that overflows from finite entries takes the exact check."""
    tensor = tensor.detach()
    return math.isfinite(float(tensor.sum())) or bool(torch.isfinite(tensor).all())


def non_finite_parameters(module: nn.Module) -> List[str]:
    """Names of ``module``'s parameters and buffers that hold a nan or inf (any torch module)."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all())]


@contextlib.contextmanager
def _seeded_init(seed: Optional[int], module_id: Optional[str]):
    """Draws inside come from ``init_seed(seed, module_id)``; the global torch RNG is left as it was."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed(seed, module_id))
        yield


def _on_remote_runner(where: str) -> bool:
    """Whether a forward pass named ``where`` runs on a remote env runner, whose errors RLlib
    swallows (it restarts the runner and trains on): sampling passes in a Ray actor. Not the
    module's ``inference_only`` flag: RLlib builds env runners' modules from a user's (or the
    swap's) ``MultiRLModuleSpec`` as full modules."""
    return where in ("forward_exploration", "forward_inference") and safety.in_remote_actor()


class QuantumPPORLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """PPO module: observation -> classical pre-encoder -> VQC actor -> logits; critic on the side.

    ``encoder`` maps the observation to ``n_qubits`` numbers (a small CNN for images, ``tanh`` of
    a linear map for vectors wider than the register, nothing for vectors that fit). The actor is
    a :class:`~rllib_quantum.circuits.QuantumLayer`; its PauliZ read-outs become the policy logits
    (``Discrete`` or ``MultiDiscrete`` actions). The critic is a small MLP on the encoder output
    (``critic: "classical"``) or a second circuit with a linear head (``critic: "quantum"``).
    Env runners only sample: RLlib syncs the module's state to them without the critic
    (:meth:`get_non_inference_attributes`), so a runner's copy has an untrained critic.

    All options come from ``model_config`` (see
    :data:`rllib_quantum.modules.model_config.DEFAULT_MODEL_CONFIG`), resolved in ``setup()``
    into :attr:`quantum_config`, a frozen
    :class:`~rllib_quantum.modules.model_config.QuantumModelConfig` (the same object the spec
    builders make): a bad option raises :class:`~rllib_quantum.errors.ConfigError` keyed by its
    path inside ``model_config``, like ``circuit.n_qubits``.

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from ray.rllib.core.columns import Columns
        >>> module = QuantumPPORLModule(
        ...     observation_space=gym.spaces.Box(-1, 1, (5,), np.float32),
        ...     action_space=gym.spaces.Discrete(3),
        ...     model_config={"circuit": {"n_qubits": 5, "n_layers": 2}},
        ... )
        >>> out = module.forward_train({Columns.OBS: torch.rand(4, 5)})
        >>> out[Columns.ACTION_DIST_INPUTS].shape, module.compute_values({Columns.OBS: torch.rand(4, 5)}).shape
        (torch.Size([4, 3]), torch.Size([4]))
        >>> module.quantum_config.encoder, module.quantum_config.actor.n_outputs
        ('none', 3)
    """

    @override(TorchRLModule)
    def setup(self) -> None:
        self.quantum_config = QuantumModelConfig.from_dict(self.model_config, self.observation_space, self.action_space)
        self.module_id = self.quantum_config.module_id
        with _seeded_init(self.quantum_config.seed, self.module_id):
            self._build(self.quantum_config)

    def _build(self, cfg: QuantumModelConfig) -> None:
        n_qubits, head = cfg.n_qubits, cfg.action_head
        # Any supported space -> a float image or vector (one-hots, flattened Dict/Tuple, pixels / 255);
        # an action mask is not an input: it masks the logits (see observations.split_action_mask).
        self.mask_keys = cfg.action_mask_keys
        self.flatten = ObservationFlattener(split_action_mask(self.observation_space, self.action_space)[0])
        self.encoder = build_encoder(cfg.encoder, cfg.input_shape, n_qubits, cfg.conv_filters)

        with reraise_under("circuit"):  # e.g. execution: 'fast' the fast path cannot run
            self.actor = QuantumLayer(cfg.actor)
        self.actor_head = nn.Linear(cfg.actor.n_readouts, head.n_logits) if cfg.readout == "linear" else nn.Identity()

        if cfg.critic_circuit is not None:
            with reraise_under("critic_circuit"):
                critic_circuit = QuantumLayer(cfg.critic_circuit)
                self.critic = nn.Sequential(critic_circuit, nn.Linear(cfg.critic_circuit.n_readouts, 1))
        else:
            self.critic = mlp(n_qubits, cfg.critic_hiddens, 1)

        # Box actions: a diagonal Gaussian whose means are the read-outs and whose log-stds are one
        # learned, state-independent parameter per action dimension (RLlib's free_log_std).
        gaussian = head.kind == "diag_gaussian"
        self.log_std = nn.Parameter(torch.zeros(head.n_logits)) if gaussian else None
        # The logits' factor (model_config "inverse_temperature"): a buffer, so that it travels with
        # the weights to the env runners and into checkpoints; the learner moves it along its
        # schedule after every update. None (no buffer, no factor) when it stays at 1.
        beta = cfg.inverse_temperature
        self.register_buffer(
            "inverse_temperature", None if beta == 1.0 else torch.tensor(inverse_temperature_at(beta, 0), dtype=torch.float32)
        )
        # The reflection the policy and critic are equivariant under (model_config "mirror"), or None.
        self.mirror = cfg.mirror
        if head.kind == "multi_categorical":  # one categorical per nvec entry
            self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(input_lens=list(head.sizes))
        else:
            self.action_dist_cls = TorchDiagGaussian if gaussian else TorchCategorical

    @property
    def resolved_model_config(self) -> Dict[str, Any]:
        """The plain-dict form of :attr:`quantum_config` (``encoder``, ``readout``, ``conv_filters``
        as built)."""
        return self.quantum_config.to_dict()

    # ---- forward passes (RLlib calls the public forward_* methods; we override the private ones)
    # The actor path in three steps, so that StackedQuantumMultiRLModule can run step 2 for several
    # modules at once: embed (observation -> circuit inputs), the circuit, dist_inputs (read-outs ->
    # action-distribution inputs).
    def embed(self, batch: Dict[str, Any], where: str) -> torch.Tensor:
        """Flattened, checked observation through the pre-encoder: the circuit's ``(B, n_qubits)``
        inputs; with ``mirror``, ``(2B, n_qubits)``: the B states, then their mirror images."""
        with self._reporting(where):
            x = self._check_finite(self.flatten(self.policy_obs(batch)), "observation", where)
            if self.mirror is not None:
                x = self.mirror.with_images(x)
            return self.encoder(x)

    def symmetrised(self, out: torch.Tensor, actions: bool = True) -> torch.Tensor:
        """With ``mirror``: ``(2B, ...)`` outputs at the states and their mirror images -> the ``(B,
        ...)`` means (:meth:`MirrorConfig.mean_over_images`); without, ``out`` itself."""
        return out if self.mirror is None else self.mirror.mean_over_images(out, actions)

    def policy_obs(self, batch: Dict[str, Any]) -> Any:
        """The batch's observations as the policy reads them (without an action mask)."""
        return policy_observation(batch[Columns.OBS], self.mask_keys)

    def masked(self, logits: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        """``logits`` with the batch's action mask applied (unchanged without a mask)."""
        return logits if self.mask_keys is None else mask_logits(logits, batch[Columns.OBS][ACTION_MASK_KEY])

    def dist_inputs(self, readouts: torch.Tensor, where: str) -> torch.Tensor:
        """The actor circuit's read-outs -> logits (or ``[means, log_stds]`` for Box actions), checked."""
        with self._reporting(where):
            out = self.symmetrised(self.actor_head(readouts))
            if self.inverse_temperature is not None:
                out = out * self.inverse_temperature
            if self.log_std is not None:  # TorchDiagGaussian's inputs
                out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return self._check_finite(out, "logits", where)

    def _logits(self, batch: Dict[str, Any], where: str) -> Dict[str, Any]:
        embeddings = self.embed(batch, where)
        with self._reporting(where):
            readouts = self.actor(embeddings)
        return {Columns.ACTION_DIST_INPUTS: self.masked(self.dist_inputs(readouts, where), batch), Columns.EMBEDDINGS: embeddings}

    @contextlib.contextmanager
    def _reporting(self, where: str):
        """Errors other than the finite checks' (e.g. observations that do not match the declared
        space) are reported from remote env runners, whose errors RLlib swallows."""
        try:
            yield
        except FloatingPointError:
            raise  # reported by _check_finite
        except Exception as err:
            if _on_remote_runner(where):
                safety.report(f"{safety.MODULE_ERROR}module {self.module_id or '<unnamed>'!r}: {safety.describe(err)} (in {where})")
            raise

    @override(TorchRLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self._logits(batch, "forward")

    # Inference and exploration run without autograd, as TorchRLModule's defaults do: no graph is
    # built while sampling, and the circuit's weights-only operators come from its cache.
    @override(TorchRLModule)
    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        with torch.no_grad():
            return {Columns.ACTION_DIST_INPUTS: self._logits(batch, "forward_inference")[Columns.ACTION_DIST_INPUTS]}

    @override(TorchRLModule)
    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        with torch.no_grad():
            return {Columns.ACTION_DIST_INPUTS: self._logits(batch, "forward_exploration")[Columns.ACTION_DIST_INPUTS]}

    @override(TorchRLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self._logits(batch, "forward_train")

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None) -> TensorType:
        if embeddings is None:
            embeddings = self.embed(batch, "compute_values")
        return self._check_finite(self.symmetrised(self.critic(embeddings).squeeze(-1), actions=False), "value", "compute_values")

    # ---- numerical safety --------------------------------------------------------------------------
    def _check_finite(self, tensor: torch.Tensor, what: str, where: str) -> torch.Tensor:
        """``tensor`` if every entry is finite, else ``FloatingPointError`` naming module, pass and cause."""
        if not torch.is_tensor(tensor) or all_finite(tensor):
            return tensor
        bad = int((~torch.isfinite(tensor.detach())).sum())
        message = (
            f"module {self.module_id or '<unnamed>'!r}: non-finite {what} in {where} "
            f"({bad} of {tensor.numel()} entries are nan/inf)"
        )
        if what != "observation":
            params = self.non_finite_parameters()
            message += (
                f"; non-finite parameters: {', '.join(params)}"
                if params
                else "; every parameter is finite (the observation too): overflow inside the module"
            )
        if _on_remote_runner(where):
            safety.report(message)  # RLlib swallows a remote env runner's error: the learner raises it
        raise FloatingPointError(message)

    def non_finite_parameters(self) -> List[str]:
        """Names of the parameters and buffers (``actor.weights``, ...) holding a nan or inf."""
        return non_finite_parameters(self)

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        return ["critic"]

    # ---- introspection ----------------------------------------------------------------------------
    def quantum_layers(self) -> Dict[str, QuantumLayer]:
        """The module's circuits by attribute path (``{"actor": ..., "critic.0": ...}``)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, QuantumLayer)}

    @property
    def lr_multipliers(self) -> Dict[str, float]:
        """Learning-rate factor of each parameter group (``model_config["lr_multipliers"]``), read-only."""
        return self.quantum_config.lr_multipliers

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Trainable parameters by group: ``circuit`` (variational weights of every circuit, the
        quantum critic's too), ``input_scale``, ``output_scale``, ``critic`` (the classical critic
        MLP, or the quantum critic's linear head) and ``classical`` (everything else: encoder,
        actor read-out head, Gaussian log-std). :class:`~rllib_quantum.learners.QuantumPPOTorchLearner`
        gives each group its own learning rate."""
        groups: Dict[str, List[nn.Parameter]] = {g: [] for g in PARAMETER_GROUPS}
        seen = set()
        for layer in self.quantum_layers().values():
            for name, param in layer.named_parameters():
                group = {"weights": "circuit"}.get(name, name)
                groups[group].append(param)
                seen.add(id(param))
        for group, params in (("critic", self.critic.parameters()), ("classical", self.parameters())):
            groups[group] = [p for p in params if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in groups[group])
        return groups

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable parameters: ``quantum`` (circuit weights and scalings), ``classical``, ``total``."""
        quantum_ids = {id(p) for layer in self.quantum_layers().values() for p in layer.parameters()}
        quantum = sum(p.numel() for p in self.parameters() if p.requires_grad and id(p) in quantum_ids)
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"quantum": quantum, "classical": total - quantum, "total": total}
