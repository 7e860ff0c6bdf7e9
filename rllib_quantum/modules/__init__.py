"""RLlib RLModules with quantum circuits inside. Knows nothing of YAML or strategies."""

from rllib_quantum.modules.model_config import (
    DEFAULT_MODEL_CONFIG,
    ActionHead,
    MirrorConfig,
    NaturalGradientConfig,
    QuantumModelConfig,
    spec_model_config,
    validate_model_config,
)
from rllib_quantum.modules.mirrored_ppo_rlm import MirroredPPOTorchRLModule
from rllib_quantum.modules.quantum_ppo_rlm import QuantumPPORLModule
from rllib_quantum.modules.stacked_multi_rlm import StackedQuantumMultiRLModule
from rllib_quantum.modules.tempered_ppo_rlm import TemperedPPOTorchRLModule

__all__ = [
    "DEFAULT_MODEL_CONFIG",
    "ActionHead",
    "MirrorConfig",
    "MirroredPPOTorchRLModule",
    "NaturalGradientConfig",
    "QuantumModelConfig",
    "QuantumPPORLModule",
    "StackedQuantumMultiRLModule",
    "TemperedPPOTorchRLModule",
    "spec_model_config",
    "validate_model_config",
]
