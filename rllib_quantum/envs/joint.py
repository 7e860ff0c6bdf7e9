"""One "joint" agent that sees and moves every agent of a multi-agent env.

Example:
    >>> from rllib_quantum.envs import JointAgentEnv, make_cooperative_pong
    >>> env = JointAgentEnv(make_cooperative_pong({"max_cycles": 300}))
    >>> env.observation_spaces["joint"].shape, env.action_spaces["joint"]
    ((10,), MultiDiscrete([3 3]))
    >>> obs, infos = env.reset(seed=0)
    >>> obs, rew, term, trunc, infos = env.step({"joint": [1, 2]})  # p0 up, p1 down
    >>> round(rew["joint"], 3), term["__all__"]
    (0.667, False)
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

JOINT_AGENT_ID = "joint"


class JointAgentEnv(MultiAgentEnv):
    """Wrap a ``MultiAgentEnv`` so a single agent controls all of its agents.

    The wrapped agents, taken in ``sorted(env.possible_agents)`` order, must all
    have ``Discrete`` action spaces and ``Box`` observation spaces of one shape
    and dtype, either vectors (1-D) or images (H x W x C). The joint agent:

    * observes every agent's observation concatenated along the last axis
      (vectors: ``(n * d,)``; images: ``(H, W, n * C)``, still an image for a CNN);
    * acts with ``MultiDiscrete([n_0, n_1, ...])``; entry ``i`` is the action of
      the ``i``-th sorted agent (a ``Discrete(n, start=s)`` gets ``entry + s``);
    * is rewarded with the sum of the agents' rewards (the per-agent rewards are
      in ``infos["joint"]["agent_rewards"]``);
    * is terminated/truncated when the wrapped env reports ``"__all__"``.

    All agents must act every step (simultaneous moves, as in a PettingZoo
    parallel env); a wrapped env that leaves an agent's observation out of a
    non-final step raises ``RuntimeError``.

    Args:
        env: the RLlib ``MultiAgentEnv`` to wrap (e.g. ``make_cooperative_pong()``).
        agent_id: id of the joint agent, default ``"joint"``.

    Example:
        >>> from rllib_quantum.envs import make_cooperative_pong
        >>> env = JointAgentEnv(make_cooperative_pong({"obs": "pixels", "frame_size": 16}))
        >>> env.get_observation_space("joint").shape  # paddle_0 frames, then paddle_1's
        (16, 16, 8)
    """

    def __init__(self, env: MultiAgentEnv, agent_id: str = JOINT_AGENT_ID) -> None:
        if not isinstance(env, MultiAgentEnv):
            raise TypeError(
                f"JointAgentEnv wraps an RLlib MultiAgentEnv, got {type(env).__name__}."
            )
        if not isinstance(agent_id, str) or not agent_id:
            raise TypeError(f"agent_id must be a non-empty str, got {agent_id!r}.")
        self._agent_ids = {agent_id}
        super().__init__()
        self.env = env
        self.agent_id = agent_id
        self.sub_agents = sorted(env.possible_agents)
        if not self.sub_agents:
            raise ValueError("The wrapped env has no possible_agents to join.")
        obs_spaces = {a: env.get_observation_space(a) for a in self.sub_agents}
        act_spaces = {a: env.get_action_space(a) for a in self.sub_agents}
        joint_obs = _joint_observation_space(obs_spaces)
        joint_act = _joint_action_space(act_spaces)
        self._starts = np.array([int(s.start) for s in act_spaces.values()], np.int64)

        self.agents = [agent_id]
        self.possible_agents = [agent_id]
        self.observation_spaces = {agent_id: joint_obs}
        self.action_spaces = {agent_id: joint_act}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        self._last_obs: dict[Any, np.ndarray] = {}

    def _join(self, obs: dict, final: bool) -> np.ndarray:
        missing = [a for a in self.sub_agents if a not in obs]
        if missing and not (final and all(a in self._last_obs for a in missing)):
            raise RuntimeError(
                f"JointAgentEnv needs every agent's observation each step; the wrapped "
                f"env returned {sorted(obs)}, missing {missing} (turn-based envs are "
                "not supported)."
            )
        self._last_obs.update(obs)
        parts = [np.asarray(self._last_obs[a]) for a in self.sub_agents]
        dtype = self.observation_spaces[self.agent_id].dtype
        return np.concatenate(parts, axis=-1).astype(dtype, copy=False)

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict] = None
    ) -> tuple[dict, dict]:
        """Reset the wrapped env; returns ``({"joint": obs}, {"joint": infos})``."""
        obs, infos = self.env.reset(seed=seed, options=options)
        self._last_obs = {}
        joint_obs = self._join(obs, final=False)
        return {self.agent_id: joint_obs}, {self.agent_id: {"agent_infos": infos}}

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        """Split the joint action, step the wrapped env, join the results.

        Args:
            action_dict: ``{"joint": a}`` with ``a`` a sequence of one action
                per sorted wrapped agent.
        """
        if self.agent_id not in action_dict:
            raise KeyError(
                f"action_dict must hold {self.agent_id!r}, got {list(action_dict)}."
            )
        joint = np.asarray(action_dict[self.agent_id]).reshape(-1)
        if joint.shape[0] != len(self.sub_agents):
            raise ValueError(
                f"Joint action must have {len(self.sub_agents)} entries (one per agent "
                f"in {self.sub_agents}), got {joint.tolist()}."
            )
        actions = {
            a: int(x) + int(s) for a, x, s in zip(self.sub_agents, joint, self._starts)
        }
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        terminated = bool(terms.get("__all__", False))
        truncated = bool(truncs.get("__all__", False))
        joint_obs = self._join(obs, final=terminated or truncated)
        agent_rewards = {a: float(r) for a, r in rewards.items()}
        aid = self.agent_id
        return (
            {aid: joint_obs},
            {aid: float(sum(agent_rewards.values()))},
            {aid: terminated, "__all__": terminated},
            {aid: truncated, "__all__": truncated},
            {aid: {"agent_rewards": agent_rewards, "agent_infos": infos}},
        )

    def close(self) -> None:  # noqa: D102
        self.env.close()


def _joint_observation_space(spaces: dict[Any, gym.Space]) -> gym.spaces.Box:
    """Concatenate equal-shape Box spaces along the last axis."""
    allowed = "Box spaces of one shape and dtype, 1-D vectors or 3-D H x W x C images"
    for agent, space in spaces.items():
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(
                f"JointAgentEnv supports {allowed}; agent {agent!r} has {space}."
            )
    shapes = {a: s.shape for a, s in spaces.items()}
    dtypes = {a: s.dtype for a, s in spaces.items()}
    first = next(iter(spaces.values()))
    if len(set(shapes.values())) != 1 or len(set(dtypes.values())) != 1:
        raise ValueError(
            f"JointAgentEnv supports {allowed}; got shapes {shapes}, dtypes {dtypes}."
        )
    if len(first.shape) not in (1, 3):
        raise ValueError(f"JointAgentEnv supports {allowed}; got shapes {shapes}.")
    low = np.concatenate([s.low for s in spaces.values()], axis=-1)
    high = np.concatenate([s.high for s in spaces.values()], axis=-1)
    return gym.spaces.Box(low=low, high=high, dtype=first.dtype)


def _joint_action_space(spaces: dict[Any, gym.Space]) -> gym.spaces.MultiDiscrete:
    """One MultiDiscrete entry per Discrete space, in the given order."""
    for agent, space in spaces.items():
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(
                f"JointAgentEnv supports Discrete action spaces only; agent {agent!r} "
                f"has {space}."
            )
    return gym.spaces.MultiDiscrete([int(s.n) for s in spaces.values()])
