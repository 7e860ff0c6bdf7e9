"""RLlib learners for quantum modules (per-group learning rates, circuit diagnostics)."""

from rllib_quantum.learners.quantum_ppo_torch_learner import DIAGNOSTICS, QuantumPPOTorchLearner

__all__ = ["DIAGNOSTICS", "QuantumPPOTorchLearner"]
