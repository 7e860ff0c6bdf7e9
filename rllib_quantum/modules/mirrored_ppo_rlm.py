"""``MirroredPPOTorchRLModule``: RLlib's default PPO module made equivariant under a reflection of the task."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import TensorType

from rllib_quantum.modules.model_config import MIRROR_KEY, MirrorConfig
from rllib_quantum.modules.tempered_ppo_rlm import TemperedPPOTorchRLModule


class MirroredPPOTorchRLModule(TemperedPPOTorchRLModule):
    """RLlib's default PPO module (its catalog's MLPs, every feed-forward ``DefaultModelConfig`` key)
    made equivariant under ``model_config["mirror"]``, exactly as
    :class:`~rllib_quantum.modules.QuantumPPORLModule` is with the same key
    (:class:`~rllib_quantum.modules.model_config.MirrorConfig`): its logits are the mean of the
    logits at the state and, the actions permuted back, at the mirror image; its value the mean of
    the two values. It lets the classical baseline take the same symmetry as the quantum policies.
    ``model_config["inverse_temperature"]`` works as in :class:`TemperedPPOTorchRLModule`.

    ``module: classical`` experiments with ``model_config.mirror`` use it
    (:func:`rllib_quantum.strategies.module_spec`); to use it yourself::

        RLModuleSpec(module_class=MirroredPPOTorchRLModule, model_config={
            "fcnet_hiddens": [64, 64], "mirror": {"observation_signs": [1, -1, 1, -1, -1], "action_permutation": [0, 2, 1]}})

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        >>> module = RLModuleSpec(module_class=MirroredPPOTorchRLModule,
        ...     observation_space=gym.spaces.Box(-1, 1, (2,), np.float32), action_space=gym.spaces.Discrete(3),
        ...     model_config={"mirror": {"observation_signs": [1, -1], "action_permutation": [0, 2, 1]}}).build()
        >>> obs = torch.rand(4, 2)
        >>> logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        >>> images = module.forward_inference({Columns.OBS: obs * torch.tensor([1.0, -1.0])})[Columns.ACTION_DIST_INPUTS]
        >>> bool(torch.allclose(images, logits[:, [0, 2, 1]], atol=1e-6))
        True
    """

    @override(TemperedPPOTorchRLModule)
    def setup(self) -> None:
        super().setup()
        self.mirror = MirrorConfig.from_dict(self.model_config[MIRROR_KEY])
        self.mirror.check_spaces(self.observation_space.shape, self.action_space)

    def _with_images(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        return {**batch, Columns.OBS: self.mirror.with_images(batch[Columns.OBS])}

    @override(RLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self._symmetrised(super()._forward(self._with_images(batch), **kwargs))

    @override(RLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # EMBEDDINGS stay those of the states and their images: compute_values takes both
        return self._symmetrised(super()._forward_train(self._with_images(batch), **kwargs))

    def _symmetrised(self, output: Dict[str, Any]) -> Dict[str, Any]:
        output[Columns.ACTION_DIST_INPUTS] = self.mirror.mean_over_images(output[Columns.ACTION_DIST_INPUTS])
        return output

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None) -> TensorType:
        if embeddings is None:
            batch = self._with_images(batch)
        return self.mirror.mean_over_images(super().compute_values(batch, embeddings), actions=False)
