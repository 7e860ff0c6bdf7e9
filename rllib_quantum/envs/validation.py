"""Up-front validation of cooperative pong ``env_config`` dicts.

Kept free of PettingZoo, SuperSuit and Ray imports so config code can validate
an experiment before any Ray worker starts (importing this module costs
nothing beyond the standard library).

Example:
    >>> from rllib_quantum.envs.validation import validate_pong_config
    >>> cfg = validate_pong_config({"obs": "pixels", "max_cycles": 300})
    >>> cfg["frame_size"], cfg["frame_stack"], cfg["ball_speed"]
    (42, 4, 9)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from rllib_quantum.errors import ConfigError

OBS_VIEWS = ("features", "pixels")

# Defaults of pettingzoo.butterfly.cooperative_pong.cooperative_pong.CooperativePong
# (PettingZoo 1.27, cooperative_pong_v6); tests/test_envs.py checks they still agree.
GAME_DEFAULTS: dict[str, Any] = {
    "max_cycles": 900,
    "ball_speed": 9,
    "left_paddle_speed": 12,
    "right_paddle_speed": 12,
    "cake_paddle": True,
    "bounce_randomness": False,
    "max_reward": 100,
    "off_screen_penalty": -10,
}
PIXEL_DEFAULTS: dict[str, Any] = {"frame_size": 42, "frame_stack": 4}
# "screen": x and vx as on the screen (-1 left edge, vx > 0 rightwards) for both paddles;
# "own_side": x and vx mirrored for the right paddle, so that for each paddle x = -1 is its own
# goal line and vx > 0 is away from it (the two paddles then face the same task, up to the
# game's own asymmetries: paddle_0 moves first, paddle_1 is cake-shaped by default).
FRAMES = ("screen", "own_side")
FEATURE_DEFAULTS: dict[str, Any] = {"frame": "screen"}
ALLOWED_KEYS = ("obs", *GAME_DEFAULTS, *PIXEL_DEFAULTS, *FEATURE_DEFAULTS)
MIN_FRAME_SIZE = 8

# key -> (kind, bound); kinds: "int" (>= bound), "pos" (real > 0), "real" (finite real), "bool",
# "choice" (bound: the allowed strings); bound is None where the kind needs none.
_RULES: dict[str, tuple[str, Any]] = {
    "max_cycles": ("int", 1),
    "ball_speed": ("pos", None),
    "left_paddle_speed": ("pos", None),
    "right_paddle_speed": ("pos", None),
    "cake_paddle": ("bool", None),
    "bounce_randomness": ("bool", None),
    "max_reward": ("real", None),
    "off_screen_penalty": ("real", None),
    "frame_size": ("int", MIN_FRAME_SIZE),
    "frame_stack": ("int", 1),
    "frame": ("choice", FRAMES),
}


def _check_value(key: str, value: Any) -> None:
    """Raise ConfigError (keyed ``key``) if ``value`` breaks the rule for ``key``."""
    kind, bound = _RULES[key]
    given = f"got {value!r} ({type(value).__name__})"
    if kind == "choice":
        if not isinstance(value, str) or value not in bound:
            raise ConfigError(key, f"must be one of {list(bound)}, {given}")
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, {given}")
        return
    want = {"int": f"an int >= {bound}", "pos": "a finite number > 0", "real": "a finite number"}[kind]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(key, f"must be {want}, {given}")
    if kind == "int":
        if not isinstance(value, numbers.Integral) or value < bound:
            raise ConfigError(key, f"must be {want}, {given}")
    elif not math.isfinite(value) or (kind == "pos" and value <= 0):
        raise ConfigError(key, f"must be {want}, {given}")


def validate_pong_config(env_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a cooperative pong ``env_config`` and fill in the defaults.

    Args:
        env_config: Mapping (a plain dict or RLlib's ``EnvContext``) with any of
            ``obs`` ("features" (default) or "pixels"), the game's keyword
            arguments ``max_cycles`` (int >= 1, default 900), ``ball_speed``,
            ``left_paddle_speed``, ``right_paddle_speed`` (numbers > 0),
            ``cake_paddle``, ``bounce_randomness`` (bools), ``max_reward``,
            ``off_screen_penalty`` (finite numbers), and, for ``obs="pixels"``
            only, ``frame_size`` (int >= 8, default 42) and ``frame_stack``
            (int >= 1, default 4), for ``obs="features"`` only ``frame``
            ("screen" (default) or "own_side": x and vx mirrored for the right
            paddle, so each paddle sees its own goal line at x = -1).
            ``None`` means all defaults.

    Returns:
        A new plain dict holding every key that applies to the chosen view,
        defaults filled in.

    Raises:
        ConfigError: ``env_config`` is not a mapping or has unknown keys
            (``key`` is ``""``: the section itself), or a value is of the wrong type
            or out of range, or a pixel-only key is given for the features view
            (a features-only key for the pixels view)
            (``key`` names it, e.g. ``"max_cycles"``). Callers that nest the section
            re-raise it under their prefix: the experiment loader and the registered
            env creators report ``env_config.max_cycles: ...``.

    Example:
        >>> validate_pong_config({"max_cycles": 300})["obs"]
        'features'
        >>> validate_pong_config({"frame_szie": 42})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: unknown key(s) ['frame_szie']; allowed: ['obs', ...]
    """
    if env_config is None:
        env_config = {}
    if not isinstance(env_config, Mapping):
        raise ConfigError(
            "", f"must be a dict (or None), got {type(env_config).__name__}"
        )
    unknown = sorted(str(k) for k in env_config if k not in ALLOWED_KEYS)
    if unknown:
        raise ConfigError(
            "", f"unknown key(s) {unknown}; allowed: {list(ALLOWED_KEYS)}"
        )
    obs = env_config.get("obs", "features")
    if not isinstance(obs, str) or obs not in OBS_VIEWS:
        raise ConfigError(
            "obs", f"must be one of {list(OBS_VIEWS)}, got {obs!r}"
        )
    defaults = dict(GAME_DEFAULTS)
    views = {"pixels": PIXEL_DEFAULTS, "features": FEATURE_DEFAULTS}
    defaults.update(views[obs])
    for other, keys in views.items():
        misplaced = sorted(k for k in keys if k in env_config)
        if other != obs and misplaced:
            raise ConfigError(
                misplaced[0],
                f"only applies to obs={other!r} ({other}-only key(s) given: {misplaced}), "
                f"but obs={obs!r}; drop them or set obs={other!r}",
            )
    config: dict[str, Any] = {"obs": obs}
    for key, default in defaults.items():
        value = env_config.get(key, default)
        _check_value(key, value)
        config[key] = value
    return config
