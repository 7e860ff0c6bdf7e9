"""RLlib learners: PPO with RLlib's batching vectorised; for quantum modules also per-group learning
rates, circuit diagnostics and batched execution of stacked modules."""

from rllib_quantum.learners.fast_batching_ppo_torch_learner import FastBatchingPPOTorchLearner
from rllib_quantum.learners.quantum_ppo_torch_learner import DIAGNOSTICS, QuantumPPOTorchLearner

__all__ = ["DIAGNOSTICS", "FastBatchingPPOTorchLearner", "QuantumPPOTorchLearner"]
