"""Frames of evaluation episodes, written to a GIF (Pillow) or an MP4 (imageio-ffmpeg).

:func:`render_frame` finds a drawable game inside the env wrappers RLlib and our registrations
put around it (RLlib's ``ParallelPettingZooEnv`` -> ``.par_env``, our ``JointAgentEnv`` ->
``.env``, SuperSuit wrappers -> ``.env``/``.aec_env``) and returns an RGB frame ``(H, W, 3)``
``uint8``; :func:`write_video` saves a list of them.

Example:
    >>> import os, tempfile
    >>> from rllib_quantum.envs import make_cooperative_pong
    >>> env = make_cooperative_pong({"max_cycles": 20})
    >>> _ = env.reset(seed=0)
    >>> frame = render_frame(env)
    >>> frame.shape, frame.dtype
    ((280, 480, 3), dtype('uint8'))
    >>> path = write_video([frame, frame], os.path.join(tempfile.mkdtemp(), "clip.gif"))
    >>> os.path.getsize(path) > 0
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

from rllib_quantum.errors import ConfigError

VIDEO_SUFFIXES = (".gif", ".mp4")
_INNER = ("par_env", "env", "aec_env", "unwrapped_env")


def render_frame(env) -> np.ndarray:
    """The current RGB frame of ``env`` (``(H, W, 3)`` uint8), unwrapping known wrappers.

    Raises:
        TypeError: nothing inside ``env`` can draw a frame.
    """
    seen, node = set(), env
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if hasattr(node, "frame"):  # our features view draws on request
            return np.ascontiguousarray(node.frame(), dtype=np.uint8)
        if getattr(node, "render_mode", None) == "rgb_array" and hasattr(node, "render"):
            frame = node.render()
            if isinstance(frame, np.ndarray) and frame.ndim == 3:
                return np.ascontiguousarray(frame, dtype=np.uint8)
        node = next((getattr(node, name) for name in _INNER if getattr(node, name, None) is not None), None)
    raise TypeError(f"cannot draw frames of {type(env).__name__}: no rgb_array renderer inside it")


def check_video_path(path: Union[str, Path]) -> Path:
    """``path`` must end in .gif or .mp4 (mp4 needs imageio-ffmpeg); raises ConfigError otherwise."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError("--video", f"must end in one of {list(VIDEO_SUFFIXES)}, got {str(path)!r}")
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError("--video", "an .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); .gif needs nothing extra") from None
    return path


def write_video(frames: Sequence[np.ndarray], path: Union[str, Path], fps: int = 30) -> Path:
    """Writes ``frames`` (RGB uint8, all the same shape) to ``path`` (.gif or .mp4); returns it."""
    path = check_video_path(path)
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images: List = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    else:
        import imageio_ffmpeg

        h, w = frames[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1)
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    return path
