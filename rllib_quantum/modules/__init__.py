"""RLlib RLModules with quantum circuits inside. Knows nothing of YAML or strategies."""

from rllib_quantum.modules.model_config import DEFAULT_MODEL_CONFIG, validate_model_config
from rllib_quantum.modules.quantum_ppo_rlm import QuantumPPORLModule

__all__ = ["DEFAULT_MODEL_CONFIG", "QuantumPPORLModule", "validate_model_config"]
