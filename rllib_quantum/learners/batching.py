"""Faster drop-ins for the per-agent steps of RLlib's PPO learner, equal to RLlib's to the bit.

With many agents, the parts of a PPO update that RLlib runs in plain Python per item grow with the
agent steps and cost more than the modules' own arithmetic (``benchmarks/agent_scaling.py``):

* :class:`EpisodesToModuleColumns` replaces RLlib's seven episode-to-batch pieces at the head of
  PPO's learner connector pipeline (:data:`EPISODE_TO_BATCH_PIECES`: the bootstrap timestep,
  observations, columns, time dim, states, agent-to-module mapping, batching) for multi-agent
  episodes of non-stateful modules: each episode's arrays read once, each module's columns
  concatenated once, the episodes not extended; anything else runs the replaced pieces.

* :class:`AddOneTsToEpisodesAndTruncateAsArrays` replaces RLlib's
  ``AddOneTsToEpisodesAndTruncate`` (the first piece of PPO's learner connector pipeline). RLlib's
  piece adds the ``loss_mask``, ``terminateds`` and ``truncateds`` columns as Python lists, one
  ``add_batch_item`` call per timestep and column; this one adds each episode's column as one
  array (RLlib's own fast path, ``ConnectorV2.add_n_batch_items`` with an ``np.ndarray``), which
  ``BatchIndividualItems`` concatenates as it does the lists.
* :class:`GeneralAdvantageEstimationAcrossModules` replaces RLlib's ``GeneralAdvantageEstimation``
  (PPO's last piece), whose value targets are a Python loop over every timestep, module by module:
  here one loop over the timesteps runs every module of equal row count at once, each step the
  same float64 arithmetic on a vector of modules (bit-identical targets); episodes are grouped by
  module in one pass instead of one pass per module. Stateful modules and single-agent episodes
  go to RLlib's piece.
* :class:`TensorMiniBatchCyclicIterator` replaces RLlib's ``MiniBatchCyclicIterator`` for batches
  of plain tensor columns: the same minibatches in the same order, with the same shuffles (the
  same ``np.random.permutation`` calls at the same points), cut as views of each module's columns
  instead of through ``SampleBatch`` slicing and ``concat_samples`` per module and minibatch.
  Anything else (sequences, ``infos``, nested columns) goes to RLlib's iterator.

:class:`~rllib_quantum.learners.FastBatchingPPOTorchLearner` uses them all (:func:`vectorised_pipeline`;
:func:`rllibs_pieces` turns a pipeline back into RLlib's); ``tests/test_batching.py`` checks them
against RLlib's on sampled multi-agent episodes.

Example:
    >>> import numpy as np, torch
    >>> from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
    >>> batch = MultiAgentBatch({"p0": SampleBatch({"obs": torch.arange(5.0)})}, env_steps=5)
    >>> minibatches = TensorMiniBatchCyclicIterator(batch, minibatch_size=2, num_epochs=1, shuffle_batch_per_epoch=False)
    >>> [mb.policy_batches["p0"]["obs"].tolist() for mb in minibatches]
    [[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import (
    AddColumnsFromEpisodesToTrainBatch,
    AddObservationsFromEpisodesToBatch,
    AddOneTsToEpisodesAndTruncate,
    AddStatesFromEpisodesToBatch,
    AddTimeDimToBatchAndZeroPad,
    AgentToModuleMapping,
    BatchIndividualItems,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.annotations import override
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.episodes import add_one_ts_to_episodes_and_truncate
from ray.rllib.utils.typing import EpisodeType


class AddOneTsToEpisodesAndTruncateAsArrays(AddOneTsToEpisodesAndTruncate):
    """RLlib's ``AddOneTsToEpisodesAndTruncate`` with each episode's three columns added as arrays.

    Every episode (chunk) gets one artificial timestep (RLlib's
    ``add_one_ts_to_episodes_and_truncate``), a ``loss_mask`` that leaves it out of the loss, and
    per-timestep ``terminateds`` / ``truncateds`` whose only possible ``True`` is at the last real
    timestep, exactly as RLlib's piece writes them (see its docstring for the convention).
    """

    @override(AddOneTsToEpisodesAndTruncate)
    def __call__(
        self,
        *,
        rl_module: RLModule,
        batch: Dict[str, Any],
        episodes: List[EpisodeType],
        explore: Optional[bool] = None,
        shared_data: Optional[dict] = None,
        **kwargs,
    ) -> Any:
        if isinstance(episodes[0], MultiAgentEpisode):
            _number_chunks(episodes)
        for i, sa_episode in enumerate(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)):
            sa_episode.id_ += "_" + str(i)
            length = len(sa_episode)
            add_one_ts_to_episodes_and_truncate([sa_episode])
            # is_truncated after the mutation, as RLlib's piece reads it
            for column, values in _bootstrap_columns(length, sa_episode.is_terminated, sa_episode.is_truncated):
                self.add_n_batch_items(batch, column, values, length + 1, sa_episode)
        shared_data["_added_loss_mask_for_valid_episode_ts"] = True
        return batch


def _number_chunks(episodes: List[MultiAgentEpisode]) -> None:
    """Each multi-agent episode chunk its own id (``<id>_<i>``, also on its single-agent episodes),
    as RLlib's ``AddOneTsToEpisodesAndTruncate`` does."""
    for i, ma_episode in enumerate(episodes):
        ma_episode.id_ += "_" + str(i)
        for sa_episode in ma_episode.agent_episodes.values():
            sa_episode.multi_agent_episode_id = ma_episode.id_


def _bootstrap_columns(length: int, terminated: bool, truncated: bool) -> list:
    """``loss_mask``, ``terminateds`` and ``truncateds`` of an episode of ``length`` steps plus the
    bootstrap timestep: the mask leaves that timestep out of the loss, and the flags' only possible
    ``True`` is at the last real timestep, as RLlib's ``AddOneTsToEpisodesAndTruncate`` writes them."""
    loss_mask = np.ones(length + 1, dtype=bool)
    loss_mask[length] = False  # the bootstrap timestep
    terminateds = np.zeros(length + 1, dtype=bool)
    truncateds = np.zeros(length + 1, dtype=bool)
    if length:
        terminateds[length - 1] = bool(terminated)
        truncateds[length - 1] = bool(truncated)
    return [(Columns.LOSS_MASK, loss_mask), (Columns.TERMINATEDS, terminateds), (Columns.TRUNCATEDS, truncateds)]


# RLlib's PPO learner pipeline up to its NumpyToTensor, in order (our first piece in RLlib's place)
EPISODE_TO_BATCH_PIECES = (
    AddOneTsToEpisodesAndTruncateAsArrays, AddObservationsFromEpisodesToBatch, AddColumnsFromEpisodesToTrainBatch,
    AddTimeDimToBatchAndZeroPad, AddStatesFromEpisodesToBatch, AgentToModuleMapping, BatchIndividualItems,
)
BOOTSTRAPPED_LENGTHS = "rllib_quantum:bootstrapped_lengths"  # shared_data: {module_id: [len + 1, ...]}


class EpisodesToModuleColumns(ConnectorV2):
    """RLlib's first seven PPO learner pieces at once, for multi-agent episodes of non-stateful modules.

    Those pieces (:data:`EPISODE_TO_BATCH_PIECES`) extend every single-agent episode by one
    bootstrap timestep (appending to each of its buffers, then validating it), add each column of
    each episode to a dict keyed by (episode, agent, module), regroup that by module and concatenate.
    With short episodes and many agents (simple spread: 25 steps, 512 episode pieces per update at
    16 agents) that per-episode Python is a large part of the learner's time. This piece reads each
    episode's arrays once, appends the bootstrap row to the arrays instead of to the episode
    (the same ``np.concatenate`` RLlib's buffers make, so dtypes match), and concatenates each
    module's columns once: the same ``{module_id: {column: array}}`` batch, column order and
    ``shared_data`` entries as the pieces it replaces; the episodes are left unextended, and their
    bootstrapped lengths go to :class:`GeneralAdvantageEstimationAcrossModules` through
    ``shared_data``. Anything else (single-agent or stateful setups, nested observations, an empty
    episode piece, a non-empty incoming batch, unequal extra-output keys within a module) runs the
    replaced pieces themselves, which it holds.
    """

    def __init__(self, pieces: List[ConnectorV2]):
        super().__init__()
        self.pieces = list(pieces)

    @override(ConnectorV2)
    def __call__(self, *, rl_module: RLModule, batch: Dict[str, Any], episodes: List[EpisodeType],
                 explore: Optional[bool] = None, shared_data: Optional[dict] = None, **kwargs) -> Any:
        columns = None if batch else self._columns(rl_module, episodes, shared_data)
        if columns is not None:
            return columns
        for piece in self.pieces:
            batch = piece(rl_module=rl_module, batch=batch, episodes=episodes, explore=explore, shared_data=shared_data, **kwargs)
        return batch

    def _columns(self, rl_module, episodes, shared_data) -> Optional[Dict[Any, Dict[str, np.ndarray]]]:
        if shared_data is None or not isinstance(rl_module, MultiRLModule) or not episodes:
            return None
        if not all(isinstance(e, MultiAgentEpisode) for e in episodes):
            return None
        if any(m.is_stateful() for m in rl_module._rl_modules.values()):
            return None
        pieces = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        keys: Dict[Any, tuple] = {}
        for sa in pieces:  # checked before anything is changed: a fallback sees the episodes as given
            extra = tuple(sa.extra_model_outputs.keys())
            if len(sa) == 0 or not sa.is_numpy or sa.module_id is None or keys.setdefault(sa.module_id, extra) != extra:
                return None
            if not all(isinstance(b.data, np.ndarray) for b in (sa.observations, sa.actions, sa.rewards)):
                return None
            if not all(isinstance(v.data, np.ndarray) for v in sa.extra_model_outputs.values()):
                return None
        _number_chunks(episodes)
        skip = {Columns.LOSS_MASK, Columns.TERMINATEDS, Columns.TRUNCATEDS, Columns.OBS, Columns.ACTIONS,
                Columns.REWARDS, Columns.STATE_IN, Columns.STATE_OUT}
        parts: Dict[Any, Dict[str, list]] = {}
        where: Dict[Any, list] = {}
        lengths: Dict[Any, List[int]] = {}
        for i, sa in enumerate(pieces):
            sa.id_ += "_" + str(i)
            n = len(sa)
            module = parts.setdefault(sa.module_id, {})
            # RLlib's piece truncates what is not done before it reads is_truncated
            columns = _bootstrap_columns(n, sa.is_terminated, sa.is_truncated or not sa.is_done)
            columns += [(Columns.OBS, sa.get_observations(slice(0, n + 1))),
                       (Columns.ACTIONS, _with_last_repeated(sa.get_actions(slice(0, n)))),
                       (Columns.REWARDS, np.concatenate([sa.get_rewards(slice(0, n)), np.asarray(0.0)[np.newaxis]], axis=0))]
            columns += [(key, _with_last_repeated(sa.get_extra_model_outputs(key=key, indices=slice(0, n))))
                        for key in keys[sa.module_id] if key not in skip]
            for column, values in columns:
                module.setdefault(column, []).append(values)
            where.setdefault(sa.module_id, []).append((sa.multi_agent_episode_id, sa.agent_id))
            lengths.setdefault(sa.module_id, []).append(n + 1)
        shared_data["_added_loss_mask_for_valid_episode_ts"] = True
        shared_data["memorized_map_structure"] = where
        shared_data[BOOTSTRAPPED_LENGTHS] = lengths
        return {mid: {column: np.concatenate(values, axis=0) for column, values in module.items()} for mid, module in parts.items()}


def _with_last_repeated(values: np.ndarray) -> np.ndarray:
    """``values`` with its last row appended once more (what RLlib's bootstrap timestep appends)."""
    return np.concatenate([values, np.asarray(values[-1])[np.newaxis]], axis=0)


def rllibs_pieces(pieces: List[ConnectorV2]) -> List[ConnectorV2]:
    """RLlib's own learner pieces for a pipeline of the package's (each twin back to RLlib's piece,
    the fused piece back to the pieces it replaced): what RLlib's PPO learner would run."""
    out: List[ConnectorV2] = []
    for piece in pieces:
        if isinstance(piece, EpisodesToModuleColumns):
            out += rllibs_pieces(piece.pieces)
        elif type(piece) is AddOneTsToEpisodesAndTruncateAsArrays:
            out.append(AddOneTsToEpisodesAndTruncate())
        elif type(piece) is GeneralAdvantageEstimationAcrossModules:
            out.append(GeneralAdvantageEstimation(gamma=piece.gamma, lambda_=piece.lambda_))
        else:
            out.append(piece)
    return out


def vectorised_pipeline(pieces: List[ConnectorV2]) -> List[ConnectorV2]:
    """The package's pieces for RLlib's PPO learner pipeline ``pieces``: each piece's vectorised
    twin, and RLlib's default episode-to-batch pieces fused into :class:`EpisodesToModuleColumns`
    where the pipeline holds them in order and ends with GAE."""
    out = [vectorised_twin(piece) for piece in pieces]
    count = len(EPISODE_TO_BATCH_PIECES)
    if (tuple(type(p) for p in out[:count]) == EPISODE_TO_BATCH_PIECES and len(out) == count + 2
            and type(out[count]) is NumpyToTensor and type(out[-1]) is GeneralAdvantageEstimationAcrossModules):
        out[:count] = [EpisodesToModuleColumns(out[:count])]
    return out


def value_targets_across_modules(values, rewards, terminateds, truncateds, gamma: float, lambda_: float) -> np.ndarray:
    """RLlib's ``compute_value_targets`` for ``M`` modules at once: ``(M, T)`` arrays in, ``(M, T)``
    float32 targets out, row ``m`` bit-identical to ``compute_value_targets`` on row ``m`` (the same
    float64 operations in the same order, on a vector of modules instead of a scalar)."""
    non_terminal = 1.0 - terminateds
    propagate = non_terminal * (1.0 - truncateds)
    next_state_values = np.concatenate([values[:, 1:], np.zeros((len(values), 1))], axis=1)
    td_residuals = rewards + gamma * non_terminal * next_state_values - values
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(len(values))
    for t in reversed(range(td_residuals.shape[1])):
        running = td_residuals[:, t] + gamma * lambda_ * propagate[:, t] * running
        advantages[:, t] = running
    return (advantages + values).astype(np.float32)


class GeneralAdvantageEstimationAcrossModules(GeneralAdvantageEstimation):
    """RLlib's ``GeneralAdvantageEstimation``, the value targets of equal-length modules in one loop.

    The same value forward passes (each module's ``compute_values``), the same targets, advantages
    (standardised per module) and tensors as RLlib's piece; multi-agent episodes of non-stateful
    modules only (anything else runs RLlib's ``__call__``).
    """

    @override(GeneralAdvantageEstimation)
    def __call__(self, *, rl_module, episodes, batch, **kwargs):
        # the modules RLlib's piece runs: in the batch and with a value function (in the module's order)
        modules = rl_module.foreach_module(
            func=lambda mid, module: module if mid in batch and isinstance(module, ValueFunctionAPI) else None,
            return_dict=True,
        )
        modules = {mid: module for mid, module in modules.items() if module is not None}
        lens: Dict[Any, List[int]] = (kwargs.get("shared_data") or {}).get(BOOTSTRAPPED_LENGTHS)  # EpisodesToModuleColumns ran
        if lens is None:  # the episodes were extended by one timestep each: their lengths
            lens = {}
            for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
                lens.setdefault(episode.module_id, []).append(len(episode))
        if None in lens or any(module.is_stateful() for module in modules.values()):
            return super().__call__(rl_module=rl_module, episodes=episodes, batch=batch, **kwargs)
        module_ids = list(modules)
        values = {mid: module.compute_values(batch[mid]) for mid, module in modules.items()}
        device = None
        columns = {}
        for mid in module_ids:
            device = values[mid].device
            columns[mid] = [convert_to_numpy(values[mid])] + [
                convert_to_numpy(batch[mid][c]) for c in (Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS)
            ]
            if len(columns[mid][0]) != sum(lens.get(mid, [])):
                raise ValueError(f"module {mid!r}: {len(columns[mid][0])} value rows for episodes of {sum(lens.get(mid, []))} steps")
        by_length: Dict[int, List[Any]] = {}
        for mid in module_ids:
            by_length.setdefault(len(columns[mid][0]), []).append(mid)
        for group in by_length.values():
            targets = value_targets_across_modules(
                *(np.stack([columns[mid][i] for mid in group]) for i in range(4)), gamma=self.gamma, lambda_=self.lambda_
            )
            for mid, module_targets in zip(group, targets):
                advantages = module_targets - columns[mid][0]
                advantages = (advantages - advantages.mean()) / max(1e-4, advantages.std())
                batch[mid][Postprocessing.ADVANTAGES] = advantages
                batch[mid][Postprocessing.VALUE_TARGETS] = module_targets
        if self._numpy_to_tensor_connector is None:
            self._numpy_to_tensor_connector = NumpyToTensor(as_learner_connector=True, device=device)
        tensors = self._numpy_to_tensor_connector(
            rl_module=rl_module,
            batch={mid: {k: batch[mid][k] for k in (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS)} for mid in module_ids},
            episodes=episodes,
        )
        for mid, module_batch in tensors.items():
            batch[mid].update(module_batch)
        return batch


def vectorised_twin(piece):
    """The package's vectorised twin of an RLlib PPO connector piece (a new instance with the same
    settings), or ``piece`` itself when it has none."""
    if type(piece) is AddOneTsToEpisodesAndTruncate:
        return AddOneTsToEpisodesAndTruncateAsArrays()
    if type(piece) is GeneralAdvantageEstimation:
        return GeneralAdvantageEstimationAcrossModules(gamma=piece.gamma, lambda_=piece.lambda_)
    return piece


def _plain_columns(module_batch: SampleBatch) -> Optional[Dict[str, torch.Tensor]]:
    """The batch's columns if every one is a tensor with a batch dim and nothing needs RLlib's
    slicing (sequence lengths, ``infos``, nested values); else ``None``."""
    if module_batch.get(SampleBatch.SEQ_LENS) is not None or module_batch._slice_seq_lens_in_B:
        return None
    columns = dict(module_batch)
    count = len(module_batch)
    if not columns or not all(torch.is_tensor(v) and v.dim() > 0 and len(v) == count for v in columns.values()):
        return None
    return columns


class TensorMiniBatchCyclicIterator(MiniBatchCyclicIterator):
    """RLlib's ``MiniBatchCyclicIterator``, its minibatches cut as tensor views.

    Takes the same arguments and yields the same ``MultiAgentBatch`` minibatches: each module's rows
    ``[start, start + minibatch_size)``, cycling through its batch (reshuffled, when
    ``shuffle_batch_per_epoch``, each time it wraps, with the same ``np.random.permutation`` call
    RLlib's ``SampleBatch.shuffle`` makes) until every module has covered ``num_epochs`` epochs or
    ``num_total_minibatches`` were yielded. Unlike RLlib's iterator it leaves the batch it was given
    unshuffled. A batch with a column that is not a plain tensor is iterated by RLlib's iterator.
    """

    def __iter__(self):
        columns = {mid: _plain_columns(b) for mid, b in self._batch.policy_batches.items()}
        if any(c is None for c in columns.values()):
            yield from super().__iter__()
            return
        templates = self._batch.policy_batches
        while (self._num_total_minibatches == 0 and min(self._num_covered_epochs.values()) < self._num_epochs) or (
            self._num_total_minibatches > 0 and self._minibatch_count < self._num_total_minibatches
        ):
            minibatch = {}
            for module_id, module_columns in columns.items():
                count = len(templates[module_id])
                if count == 0:
                    raise ValueError(f"The batch for module_id {module_id} is empty: no minibatch can be cut from it")
                start, n_steps, pieces = self._start[module_id], self._minibatch_size, []
                while start + n_steps >= count:  # to the end of this epoch's order, then wrap
                    pieces.append({k: v[start:] for k, v in module_columns.items()})
                    n_steps -= count - start
                    start = 0
                    self._num_covered_epochs[module_id] += 1
                    if self._shuffle_batch_per_epoch:
                        order = torch.from_numpy(np.random.permutation(count))
                        module_columns = columns[module_id] = {k: v[order] for k, v in module_columns.items()}
                end = start + n_steps
                if end > start:
                    pieces.append({k: v[start:end] for k, v in module_columns.items()})
                self._start[module_id] = end
                data = pieces[0] if len(pieces) == 1 else {k: torch.cat([p[k] for p in pieces]) for k in pieces[0]}
                template = templates[module_id]
                minibatch[module_id] = SampleBatch(
                    data, _time_major=template.time_major, _zero_padded=template.zero_padded,
                    _max_seq_len=template.max_seq_len,
                    _num_grad_updates=template.num_grad_updates if template.num_grad_updates is not None else 0.0,
                )
            yield MultiAgentBatch(minibatch, len(self._batch))
            self._minibatch_count += 1
