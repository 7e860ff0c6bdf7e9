"""``TemperedPPOTorchRLModule``: RLlib's default PPO module with an inverse temperature on its logits."""

from __future__ import annotations

from typing import Any, Dict

import torch

from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

from rllib_quantum.modules.model_config import INVERSE_TEMPERATURE_KEY, checked_inverse_temperature, inverse_temperature_at


class TemperedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module (its catalog's MLPs or CNNs, every ``DefaultModelConfig`` key) whose
    categorical logits are multiplied by ``model_config["inverse_temperature"]``, exactly as
    :class:`~rllib_quantum.modules.QuantumPPORLModule` does with the same key: a number, or a
    schedule over env steps that :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` follows
    after every update (the factor is a buffer, so it reaches the env runners with the weights).
    It lets the classical baseline take the same sharpening as the quantum policies.

    ``module: classical`` experiments with ``model_config.inverse_temperature`` use it
    (:func:`rllib_quantum.strategies.module_spec`); to use it yourself::

        RLModuleSpec(module_class=TemperedPPOTorchRLModule,
                     model_config={"fcnet_hiddens": [64, 64], "inverse_temperature": [[0, 1.0], [400000, 2.0]]})

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        >>> space = gym.spaces.Box(-1, 1, (5,), np.float32)
        >>> def build(beta):
        ...     torch.manual_seed(0)
        ...     return RLModuleSpec(module_class=TemperedPPOTorchRLModule, observation_space=space,
        ...         action_space=gym.spaces.Discrete(3), model_config={"inverse_temperature": beta}).build()
        >>> obs = {Columns.OBS: torch.rand(4, 5)}
        >>> plain, sharp = build(1.0), build(2.0)
        >>> bool(torch.allclose(sharp.forward_inference(obs)[Columns.ACTION_DIST_INPUTS],
        ...                     2 * plain.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]))
        True
    """

    @override(DefaultPPOTorchRLModule)
    def setup(self) -> None:
        super().setup()
        self.inverse_temperature_schedule = checked_inverse_temperature(
            self.model_config.get(INVERSE_TEMPERATURE_KEY, 1.0), self.action_space
        )
        start = inverse_temperature_at(self.inverse_temperature_schedule, 0)
        self.register_buffer("inverse_temperature", torch.tensor(start, dtype=torch.float32))

    @override(RLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self._tempered(super()._forward(batch, **kwargs))

    @override(RLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self._tempered(super()._forward_train(batch, **kwargs))

    def _tempered(self, output: Dict[str, Any]) -> Dict[str, Any]:
        output[Columns.ACTION_DIST_INPUTS] = output[Columns.ACTION_DIST_INPUTS] * self.inverse_temperature
        return output
