"""``QuantumPPORLModule``: a PPO actor-critic whose actor is a variational quantum circuit."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import TensorType

from rllib_quantum.circuits import QuantumLayer
from rllib_quantum.modules.encoders import build_encoder, mlp
from rllib_quantum.modules.model_config import (
    PARAMETER_GROUPS,
    critic_circuit_config,
    n_logits,
    resolve_encoder,
    resolve_readout,
    validate_model_config,
)


class QuantumPPORLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """PPO module: observation -> classical pre-encoder -> VQC actor -> logits; critic on the side.

    ``encoder`` maps the observation to ``n_qubits`` numbers (a small CNN for images, ``tanh`` of
    a linear map for vectors wider than the register, nothing for vectors that fit). The actor is
    a :class:`~rllib_quantum.circuits.QuantumLayer`; its PauliZ read-outs become the policy logits
    (``Discrete`` or ``MultiDiscrete`` actions). The critic is a small MLP on the encoder output
    (``critic: "classical"``) or a second circuit with a linear head (``critic: "quantum"``).
    Env runners build the module ``inference_only``: the critic is dropped there.

    All options come from ``model_config`` (see
    :data:`rllib_quantum.modules.model_config.DEFAULT_MODEL_CONFIG`), validated in ``setup()``.

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
    """

    @override(TorchRLModule)
    def setup(self) -> None:
        cfg = validate_model_config(self.model_config, self.observation_space, self.action_space)
        circuit = cfg["circuit"]
        n_qubits = circuit["n_qubits"]
        logits = n_logits(self.action_space)

        kind = resolve_encoder(cfg, self.observation_space)
        self.encoder = build_encoder(kind, self.observation_space.shape, n_qubits, cfg["conv_filters"])

        readout = resolve_readout(cfg, self.action_space)
        self.actor = QuantumLayer({**circuit, "n_outputs": logits if readout == "expval" else n_qubits})
        self.actor_head = nn.Linear(n_qubits, logits) if readout == "linear" else nn.Identity()

        if cfg["critic"] == "quantum":
            self.critic = nn.Sequential(QuantumLayer(critic_circuit_config(cfg)), nn.Linear(n_qubits, 1))
        else:
            self.critic = mlp(n_qubits, cfg["critic_hiddens"], 1)

        if isinstance(self.action_space, gym.spaces.MultiDiscrete):
            self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
                input_lens=[int(n) for n in np.asarray(self.action_space.nvec)]
            )
        else:
            self.action_dist_cls = TorchCategorical
        self.resolved_model_config = {**cfg, "encoder": kind, "readout": readout}

    # ---- forward passes (RLlib calls the public forward_* methods; we override the private ones)
    @override(TorchRLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        embeddings = self.encoder(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: self.actor_head(self.actor(embeddings))}

    @override(TorchRLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        embeddings = self.encoder(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.actor_head(self.actor(embeddings)),
            Columns.EMBEDDINGS: embeddings,
        }

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None) -> TensorType:
        if embeddings is None:
            embeddings = self.encoder(batch[Columns.OBS])
        return self.critic(embeddings).squeeze(-1)

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        return ["critic"]

    # ---- introspection ----------------------------------------------------------------------------
    def quantum_layers(self) -> Dict[str, QuantumLayer]:
        """The module's circuits by attribute path (``{"actor": ..., "critic.0": ...}``)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, QuantumLayer)}

    @property
    def lr_multipliers(self) -> Dict[str, float]:
        """Learning-rate factor of each parameter group (``model_config["lr_multipliers"]``)."""
        return self.resolved_model_config["lr_multipliers"]

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Trainable parameters by group: ``circuit`` (variational weights of every circuit),
        ``input_scale``, ``output_scale`` and ``classical`` (everything else: encoder, read-out
        head, critic MLP). :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` gives each group
        its own learning rate."""
        groups: Dict[str, List[nn.Parameter]] = {g: [] for g in PARAMETER_GROUPS}
        seen = set()
        for layer in self.quantum_layers().values():
            for name, param in layer.named_parameters():
                group = {"weights": "circuit"}.get(name, name)
                groups[group].append(param)
                seen.add(id(param))
        groups["classical"] = [p for p in self.parameters() if p.requires_grad and id(p) not in seen]
        return groups

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable parameters: ``quantum`` (circuit weights and scalings), ``classical``, ``total``."""
        quantum_ids = {id(p) for layer in self.quantum_layers().values() for p in layer.parameters()}
        quantum = sum(p.numel() for p in self.parameters() if p.requires_grad and id(p) in quantum_ids)
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"quantum": quantum, "classical": total - quantum, "total": total}
