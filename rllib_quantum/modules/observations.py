"""Any common gymnasium observation space, turned into what a pre-encoder takes: a float image
``(B, H, W, C)`` or a float vector ``(B, D)``.

==================================  ========================================================
space                               what the encoder sees
==================================  ========================================================
``Box`` of shape ``(H, W, C)``      a float image; integer pixels (``uint8`` frames) are
                                    divided by 255 (bounds ``[0, 255]``) or by the space's
                                    ``high`` (other integer bounds), so they lie in ``[0, 1]``
``Box`` of any other shape          its entries, flattened (float)
``Discrete(n, start)``              a one-hot vector of ``n``
``MultiDiscrete(nvec)`` (1-D)       the one-hots of its entries, concatenated
``MultiBinary(n)``                  its bits as floats
``Dict`` / ``Tuple``                its sub-spaces flattened as above (images too) and
                                    concatenated, in the space's own key / index order
==================================  ========================================================

Anything else (``Text``, ``Graph``, ``Sequence``, nested images you want convolved) raises
:class:`~rllib_quantum.errors.ConfigError` keyed ``observation_space`` when the module is
validated, on the driver.

Example:
    >>> import gymnasium as gym, torch
    >>> space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,)), "room": gym.spaces.Discrete(3)})
    >>> encoder_input_shape(space)
    (5,)
    >>> flat = ObservationFlattener(space)({"pos": torch.zeros(4, 2), "room": torch.tensor([0, 2, 1, 0])})
    >>> flat.shape, flat[1].tolist()
    (torch.Size([4, 5]), [0.0, 0.0, 0.0, 0.0, 1.0])
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rllib_quantum.errors import ConfigError

SUPPORTED = "Box (vectors of any shape, images H x W x C of any dtype), Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"


def is_image(space: gym.Space) -> bool:
    """A ``Box`` of rank 3: an ``(H, W, C)`` frame."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def flat_size(space: gym.Space) -> int:
    """How many floats :class:`ObservationFlattener` makes of one observation of ``space``."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete) and np.asarray(space.nvec).ndim == 1:
        return int(np.sum(space.nvec))
    if isinstance(space, gym.spaces.MultiBinary):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Dict):
        return sum(flat_size(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return sum(flat_size(s) for s in space.spaces)
    raise ConfigError("observation_space", f"must be one of {SUPPORTED} for QuantumPPORLModule, got {space}")


def encoder_input_shape(space: gym.Space) -> Tuple[int, ...]:
    """``(H, W, C)`` for an image ``Box``, else ``(D,)`` with ``D = flat_size(space)``."""
    return tuple(int(d) for d in space.shape) if is_image(space) else (flat_size(space),)


def _pixel_scale(space: gym.spaces.Box) -> float:
    """The divisor that brings an integer image into [0, 1] (1 for float images)."""
    if np.issubdtype(space.dtype, np.floating):
        return 1.0
    high = float(np.max(space.high))
    return 255.0 if not np.isfinite(high) or high <= 0 else high


ACTION_MASK_KEY = "action_mask"


def split_action_mask(space: gym.Space, action_space: Optional[gym.Space]) -> Tuple[gym.Space, Optional[Tuple[str, ...]]]:
    """The part of ``space`` the policy reads, and the keys of that part when ``space`` carries an
    action mask (else ``None``).

    An action mask is a ``Dict`` entry ``"action_mask"`` (PettingZoo's classic games, RLlib's
    action-masking examples) of shape ``(n,)`` next to a ``Discrete(n)`` action space. The policy
    then reads the other entries (a single remaining entry as itself, so an image stays an image),
    and its logits of actions whose mask is 0 are pushed to the float minimum.

    Example:
        >>> space = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (4,)), "action_mask": gym.spaces.MultiBinary(3)})
        >>> split_action_mask(space, gym.spaces.Discrete(3))
        (Box(-1.0, 1.0, (4,), float32), ('observation',))
        >>> split_action_mask(space, gym.spaces.Discrete(2))[1] is None   # sizes differ: an ordinary input
        True
    """
    if not (isinstance(space, gym.spaces.Dict) and ACTION_MASK_KEY in space.spaces and isinstance(action_space, gym.spaces.Discrete)):
        return space, None
    mask = space.spaces[ACTION_MASK_KEY]
    rest = {k: v for k, v in space.spaces.items() if k != ACTION_MASK_KEY}
    if not rest or not isinstance(mask, (gym.spaces.Box, gym.spaces.MultiBinary)) or tuple(mask.shape) != (int(action_space.n),):
        return space, None
    return (next(iter(rest.values())) if len(rest) == 1 else gym.spaces.Dict(rest)), tuple(rest)


def policy_observation(obs: Any, keys: Optional[Tuple[str, ...]]) -> Any:
    """A batch of observations without its action mask (``keys`` from :func:`split_action_mask`)."""
    if keys is None:
        return obs
    return obs[keys[0]] if len(keys) == 1 else {k: obs[k] for k in keys}


def mask_logits(logits: torch.Tensor, mask: Any) -> torch.Tensor:
    """``logits`` with the entries whose ``mask`` is 0 lowered to about the float minimum (finite,
    as RLlib's action-masking module does: softmax gives them probability 0)."""
    mask = torch.as_tensor(mask, device=logits.device).to(logits.dtype)
    return logits + torch.clamp(torch.log(mask), min=torch.finfo(logits.dtype).min)


class ObservationFlattener(nn.Module):
    """Turns a batch of observations of ``space`` into a float tensor the encoders take (see the
    module docstring); a batch of a ``Dict``/``Tuple`` space is a dict/tuple of tensors, as RLlib
    passes it."""

    def __init__(self, space: gym.Space) -> None:
        super().__init__()
        flat_size(space)  # raises for unsupported spaces
        self.space = space
        self.image = is_image(space)
        self.scale = _pixel_scale(space) if self.image else 1.0

    def forward(self, obs: Any) -> torch.Tensor:
        if self.image:
            obs = _checked(self.space, torch.as_tensor(obs)).float()
            return obs / self.scale if self.scale != 1.0 else obs
        return _flatten(self.space, obs)


def _checked(space: gym.spaces.Box, obs: torch.Tensor) -> torch.Tensor:
    """``obs``, a batch of ``space``'s observations, or ValueError naming both shapes (a batch whose
    trailing shape differs would otherwise be reshaped or padded silently)."""
    trailing = tuple(obs.shape[obs.dim() - len(space.shape):]) if obs.dim() >= len(space.shape) else None
    if trailing != tuple(space.shape) or obs.dim() > len(space.shape) + 1:  # (a scalar space: shape ())
        raise ValueError(
            f"observations of shape {tuple(obs.shape)} do not match the declared observation space {space} "
            f"(expected (batch, {', '.join(map(str, space.shape))}))"
        )
    return obs


def _flatten(space: gym.Space, obs: Any) -> torch.Tensor:
    if isinstance(space, gym.spaces.Dict):
        return torch.cat([_flatten(s, obs[k]) for k, s in space.spaces.items()], dim=-1)
    if isinstance(space, gym.spaces.Tuple):
        return torch.cat([_flatten(s, o) for s, o in zip(space.spaces, obs)], dim=-1)
    obs = torch.as_tensor(obs)
    if isinstance(space, gym.spaces.Discrete):
        return nn.functional.one_hot(obs.long().reshape(-1) - int(space.start), int(space.n)).float()
    if isinstance(space, gym.spaces.MultiDiscrete):
        obs = obs.long().reshape(obs.shape[0], -1)
        start = np.zeros_like(space.nvec) if getattr(space, "start", None) is None else np.asarray(space.start)
        return torch.cat(
            [nn.functional.one_hot(obs[:, i] - int(start[i]), int(n)).float() for i, n in enumerate(np.asarray(space.nvec))],
            dim=-1,
        )
    if isinstance(space, gym.spaces.Box):
        obs = _checked(space, obs)
    batch = obs.shape[0] if obs.dim() > len(space.shape) else 1
    flat = obs.reshape(batch, -1).float()
    if isinstance(space, gym.spaces.Box) and not np.issubdtype(space.dtype, np.floating):
        flat = flat / _pixel_scale(space) if len(space.shape) == 3 else flat
    return flat
