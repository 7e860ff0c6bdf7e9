"""``FastBatchingPPOTorchLearner``: RLlib's PPO torch learner with its per-agent batching vectorised.

RLlib's ``PPOTorchLearner`` with steps of every update replaced by equal, faster ones
(:mod:`rllib_quantum.learners.batching`): for multi-agent episodes the learner connector's
episode-to-batch pieces run as one (each episode's arrays read once, each module's columns
concatenated once; elsewhere its first piece adds its columns per episode instead of per
timestep), its last (GAE) computes the value targets of all equal-length modules in one loop, and
minibatches are cut as tensor views instead of through ``SampleBatch`` slicing and concatenation
per module. Batches, minibatches, shuffles and therefore
training are identical to RLlib's (``tests/test_batching.py``); the time saved grows with the agent
steps per update (``benchmarks/agent_scaling.py``).

:class:`~rllib_quantum.learners.QuantumPPOTorchLearner` builds on it, and the package's classical
YAML experiments use it, so that quantum and classical runs compare the modules, not two kinds of
bookkeeping. Use it in any PPO config:

Example:
    >>> from ray.rllib.algorithms.ppo import PPOConfig
    >>> config = PPOConfig().learners(learner_class=FastBatchingPPOTorchLearner)
    >>> config.learner_class.__name__
    'FastBatchingPPOTorchLearner'
"""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.learner.learner import Learner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from rllib_quantum.learners.batching import TensorMiniBatchCyclicIterator, vectorised_pipeline


class FastBatchingPPOTorchLearner(PPOTorchLearner):
    """``PPOTorchLearner`` whose learner connector pieces and minibatch iterator are the vectorised
    twins of RLlib's (:func:`~rllib_quantum.learners.batching.vectorised_pipeline`)."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        if self._learner_connector is not None:  # the pieces PPO added around RLlib's pipeline: swapped
            pieces = self._learner_connector.connectors
            pieces[:] = vectorised_pipeline(pieces)

    @override(Learner)
    def _create_iterator_if_necessary(self, **kwargs):
        iterator = super()._create_iterator_if_necessary(**kwargs)
        if type(iterator) is not MiniBatchCyclicIterator:  # no minibatches, a data iterator, or none at all
            return iterator
        return TensorMiniBatchCyclicIterator(
            iterator._batch, num_epochs=iterator._num_epochs, minibatch_size=iterator._minibatch_size,
            shuffle_batch_per_epoch=iterator._shuffle_batch_per_epoch,
            num_total_minibatches=iterator._num_total_minibatches,
        )
