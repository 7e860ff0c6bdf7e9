"""Cooperative pong (PettingZoo ``cooperative_pong_v6``) in two views.

``env_config["obs"]`` picks the view (see :func:`validate_pong_config`):

* ``"features"`` (default, fast): :class:`CooperativePongFeatures` drives the
  game object ``CooperativePong`` directly, never draws, and gives each paddle
  5 numbers in [-1, 1]: ball x, ball y, ball vx, ball vy, own paddle y
  (``frame: own_side`` mirrors x and vx for the right paddle).
* ``"pixels"`` (the paper's setting): the PettingZoo parallel env rendered to
  RGB, then SuperSuit grey scale -> resize to ``frame_size`` -> float32 ->
  [0, 1] -> stack ``frame_stack`` frames: Box(0, 1, (42, 42, 4), float32).

Measured on the 2-core dev box (one env, one process, random actions drawn in
advance, resets included, 900 max_cycles): features about 80,000 env steps/s
(about 60,000 inside ``JointAgentEnv``), pixels about 210 env steps/s (150-220
over runs), i.e. ~400x slower: the pixel path draws the screen, copies the
280x480x3 frame twice per step, converts to grey, resizes and stacks.

Example:
    >>> from rllib_quantum.envs import make_cooperative_pong
    >>> env = make_cooperative_pong({"max_cycles": 300})
    >>> obs, infos = env.reset(seed=0)
    >>> sorted(obs), obs["paddle_0"].shape
    (['paddle_0', 'paddle_1'], (5,))
    >>> obs, rewards, terms, truncs, infos = env.step({"paddle_0": 1, "paddle_1": 0})
    >>> round(rewards["paddle_0"], 3), terms["__all__"], truncs["__all__"]
    (0.333, False, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.butterfly.cooperative_pong import cooperative_pong as _pong

from rllib_quantum.envs.validation import FRAMES, GAME_DEFAULTS, validate_pong_config

AGENTS = ("paddle_0", "paddle_1")
STAY, UP, DOWN = 0, 1, 2  # the game's actions; UP decreases the pygame y coordinate
FEATURE_NAMES = ("ball_x", "ball_y", "ball_vx", "ball_vy", "paddle_y")


class _HeadlessPong(_pong.CooperativePong):
    """The PettingZoo game with drawing switched off.

    ``CooperativePong.step``/``reset`` call ``render()`` unconditionally, which
    with ``render_mode=None`` only emits gymnasium's "render method without
    specifying any render mode" warning. The features view never needs pixels,
    so rendering is a no-op here (no warning to filter, no drawing cost).
    """

    def render(self) -> None:  # noqa: D102
        return None


class CooperativePongFeatures(ParallelEnv):
    """Cooperative pong as a PettingZoo ``ParallelEnv`` with 5-number observations.

    Game rules, rewards (``max_reward / max_cycles`` per step in play,
    ``off_screen_penalty`` and termination when the ball leaves), truncation at
    ``max_cycles`` and seeding are exactly those of ``cooperative_pong_v6``: one
    ``step`` moves paddle_0, then paddle_1, then the ball, as one AEC cycle does.
    The same seed and actions give the same trajectory as the PettingZoo env.

    Observation of each paddle, float32, each entry clipped to [-1, 1]:
    ``[ball x, ball y, ball vx, ball vy, own paddle y]``; positions are the
    centres scaled by the play area (x: -1 left edge, +1 right edge; y: -1 top,
    +1 bottom), velocities divided by ``ball_speed``.

    With ``frame="own_side"`` the right paddle's ball x and vx are negated, so
    that each paddle sees its own goal line at x = -1 and vx > 0 as the ball
    moving away from it: both paddles then face the same task (up to the
    game's asymmetries: paddle_0 moves first, paddle_1 is cake-shaped by
    default), which is what sharing or averaging policies across them assumes.

    Args:
        frame: ``"screen"`` (default) or ``"own_side"``, see above.
        **game_kwargs: the game's keyword arguments (``max_cycles``,
            ``ball_speed``, ``left_paddle_speed``, ``right_paddle_speed``,
            ``cake_paddle``, ``bounce_randomness``, ``max_reward``,
            ``off_screen_penalty``); unset ones take the game's defaults.

    Example:
        >>> env = CooperativePongFeatures(max_cycles=50)
        >>> obs, _ = env.reset(seed=1)
        >>> obs["paddle_1"].dtype, env.observation_space("paddle_1").shape
        (dtype('float32'), (5,))
    """

    metadata = {
        "name": "rllib_quantum_cooperative_pong_features",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, frame: str = "screen", **game_kwargs: Any) -> None:
        unknown = sorted(set(game_kwargs) - set(GAME_DEFAULTS))
        if unknown:
            raise ValueError(
                f"Unknown game argument(s) {unknown}; allowed: {list(GAME_DEFAULTS)}."
            )
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {list(FRAMES)}, got {frame!r}.")
        # Per paddle, the sign of ball x and vx in its observation.
        self._x_sign = {"paddle_0": 1.0, "paddle_1": -1.0 if frame == "own_side" else 1.0}
        self._game_kwargs = {**GAME_DEFAULTS, **game_kwargs}
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_space = gymnasium.spaces.Box(-1.0, 1.0, (5,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(3)
        self._seed(None)

    def _seed(self, seed: int | None) -> None:
        # Same as raw_env._seed: a fresh generator and a fresh game object.
        self._randomizer, _ = seeding.np_random(seed)
        self.game = _HeadlessPong(self._randomizer, **self._game_kwargs)

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:  # noqa: D102
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:  # noqa: D102
        return self._act_space

    def _observe(self) -> dict[str, np.ndarray]:
        game = self.game
        ball = game.ball._rect  # pygame.Rect (integer pixels)
        vx, vy = game.ball._speed
        w, h = float(game.s_width), float(game.s_height)
        speed = float(game.speed[0])
        x, y = 2.0 * ball.centerx / w - 1.0, 2.0 * ball.centery / h - 1.0
        out = {}
        for agent, paddle in zip(AGENTS, (game.p0, game.p1)):
            sign = self._x_sign[agent]
            vec = np.array([sign * x, y, sign * vx / speed, vy / speed,
                            2.0 * paddle.rects[0].centery / h - 1.0],
                           dtype=np.float32)
            out[agent] = np.clip(vec, -1.0, 1.0)
        return out

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        """Start a new rally; ``seed`` reseeds (like ``cooperative_pong_v6``)."""
        if seed is not None:
            self._seed(seed)
        self.game.reset()
        self.agents = list(AGENTS)
        return self._observe(), {a: {} for a in AGENTS}

    def step(self, actions: Mapping[str, int]):
        """Move paddle_0, then paddle_1 and the ball; one AEC cycle.

        Args:
            actions: ``{"paddle_0": a0, "paddle_1": a1}`` with actions in
                {0 stay, 1 up, 2 down}.

        Returns:
            ``(obs, rewards, terminations, truncations, infos)`` dicts keyed by
            agent, as the PettingZoo parallel env returns them.
        """
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset().")
        acts = {}
        for agent in AGENTS:
            if agent not in actions:
                raise KeyError(f"actions must hold {list(AGENTS)}, got {list(actions)}.")
            act = actions[agent]
            if act not in (0, 1, 2):
                raise ValueError(f"actions[{agent!r}] must be 0, 1 or 2, got {act!r}.")
            acts[agent] = int(act)
        game = self.game
        game.step(acts["paddle_0"], "paddle_0")
        game.step(acts["paddle_1"], "paddle_1")
        obs = self._observe()
        rewards = {a: float(game.rewards[a]) for a in AGENTS}
        terminations = {a: bool(game.terminations[a]) for a in AGENTS}
        truncations = {a: bool(game.truncations[a]) for a in AGENTS}
        infos = {a: {} for a in AGENTS}
        if game.terminate or game.truncate:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        """The features view does not render while it steps (that is what makes it fast); see
        :meth:`frame` for a picture of the current state."""
        return None

    def frame(self) -> np.ndarray:
        """The game's current screen as an RGB array ``(280, 480, 3)`` uint8, drawn on request
        (for videos of evaluation episodes; training never calls it)."""
        import pygame

        game = self.game
        if game.screen is None:
            game.screen = pygame.Surface((game.s_width, game.s_height))
        _pong.CooperativePong.draw(game)
        return np.transpose(np.array(pygame.surfarray.pixels3d(game.screen)), axes=(1, 0, 2))

    def state(self) -> np.ndarray:
        """Global state: paddle_0's features plus paddle_1's y, shape (6,)."""
        obs = self._observe()
        return np.concatenate([obs["paddle_0"], obs["paddle_1"][4:]])

    def close(self) -> None:
        """Drop the game's surface; unlike the game's close, no ``pygame.quit()``
        (that would pull pygame from under other envs in this process)."""
        self.game.screen = None


def make_parallel_pong(env_config: Mapping[str, Any] | None = None) -> ParallelEnv:
    """Build the PettingZoo parallel env for the view in ``env_config``.

    Args:
        env_config: see :func:`validate_pong_config`; validated here.

    Returns:
        :class:`CooperativePongFeatures` for ``obs="features"``, or the
        SuperSuit-wrapped ``cooperative_pong_v6`` parallel env for ``obs="pixels"``.

    Example:
        >>> env = make_parallel_pong({"obs": "pixels", "frame_size": 16, "frame_stack": 2})
        >>> env.observation_space("paddle_0").shape
        (16, 16, 2)
    """
    config = validate_pong_config(env_config)
    game_kwargs = {k: config[k] for k in GAME_DEFAULTS}
    if config["obs"] == "features":
        return CooperativePongFeatures(frame=config["frame"], **game_kwargs)

    import supersuit as ss  # only the pixel view needs SuperSuit

    # Same function as cooperative_pong_v6.parallel_env, minus the module's
    # "old creation API" DeprecationWarning. render_mode=None gives black frames.
    env = _pong.parallel_env(render_mode="rgb_array", **game_kwargs)
    env = ss.color_reduction_v0(env, "full")
    env = ss.resize_v1(env, config["frame_size"], config["frame_size"])
    env = ss.dtype_v0(env, np.float32)  # normalize_obs_v0 needs float32 first
    env = ss.normalize_obs_v0(env, env_min=0, env_max=1)
    env = ss.frame_stack_v1(env, config["frame_stack"])
    return env


def make_cooperative_pong(env_config: Mapping[str, Any] | None = None):
    """RLlib ``MultiAgentEnv`` creator for cooperative pong (either view).

    Args:
        env_config: see :func:`validate_pong_config`; RLlib's ``EnvContext``
            works too.

    Returns:
        A ``ParallelPettingZooEnv`` with agents ``["paddle_0", "paddle_1"]``
        in that order and ``observation_spaces``/``action_spaces`` dicts.

    Example:
        >>> env = make_cooperative_pong({"obs": "features"})
        >>> env.possible_agents, env.get_action_space("paddle_1")
        (['paddle_0', 'paddle_1'], Discrete(3))
    """
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    par_env = make_parallel_pong(env_config)
    env = ParallelPettingZooEnv(par_env)
    # ParallelPettingZooEnv orders agents by a set; make the order stable and
    # give the RLlib 2.60 per-agent space dicts.
    env.agents = list(AGENTS)
    env.possible_agents = list(AGENTS)
    env.observation_spaces = {a: par_env.observation_space(a) for a in AGENTS}
    env.action_spaces = {a: par_env.action_space(a) for a in AGENTS}
    return env


def scripted_tracker_action(obs: np.ndarray, deadband: float = 0.05) -> int:
    """Move the paddle toward the ball's y (features view); the ~ceiling policy.

    Args:
        obs: one paddle's features observation ``[bx, by, vx, vy, paddle_y]``.
        deadband: stay still when ``|ball_y - paddle_y|`` is below this
            (scaled units; a paddle step of 12 px is 0.086).

    Returns:
        0 (stay), 1 (up: toward smaller y) or 2 (down).

    Example:
        >>> import numpy as np
        >>> scripted_tracker_action(np.array([0, -0.5, 0, 0, 0.2]))  # ball above
        1
    """
    diff = float(obs[1]) - float(obs[4])
    if diff < -deadband:
        return UP
    if diff > deadband:
        return DOWN
    return STAY


def random_action(obs: Any = None, rng: np.random.Generator | None = None) -> int:
    """A uniformly random action in {0, 1, 2} (``obs`` is ignored).

    Args:
        obs: unused; present so it is interchangeable with the tracker.
        rng: generator to draw from (default: numpy's global-seeded default).

    Example:
        >>> random_action(rng=np.random.default_rng(0)) in (0, 1, 2)
        True
    """
    rng = rng if rng is not None else np.random.default_rng()
    return int(rng.integers(3))
