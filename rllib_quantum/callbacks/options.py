"""Options of :class:`ParameterAveragingCallback`: defaults and up-front validation (no Ray import).

==============  ===========================================================================
``modules``     ``None`` (all trained modules) or a list of >= 2 module ids to average together
``params``      ``"quantum"`` (the circuit parameters: every parameter of a ``QuantumLayer``),
                ``"all"`` (every floating-point entry of the module's state dict), or a list of
                ``fnmatch`` patterns over state-dict keys, e.g. ``["actor.*", "encoder.*"]``
``weights``     ``"uniform"`` or ``"agent_steps"`` (weighted by each module's sampled agent
                steps in the iteration that ends the round)
``optimizer``   ``"keep"``: each module's Adam moments (``exp_avg``, ``exp_avg_sq``, ``step``)
                survive the overwrite, so its next updates still carry its own momentum;
                ``"reset"``: the optimizer state of the averaged parameters is dropped, so the
                next update starts Adam afresh (bias correction from step 1) from the average
``every``       average every ``every`` training iterations (int >= 1)
==============  ===========================================================================
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping

PARAMS_PRESETS = ("quantum", "all")
WEIGHTINGS = ("uniform", "agent_steps")
OPTIMIZER_MODES = ("keep", "reset")

DEFAULT_AVERAGING_OPTIONS: Dict[str, Any] = {
    "modules": None,
    "params": "quantum",
    "weights": "uniform",
    "optimizer": "keep",
    "every": 1,
}


def validate_averaging_options(options: Mapping[str, Any] | None = None) -> dict:
    """Checks averaging options and fills in defaults; raises naming the offending key.

    Args:
        options: any of the keys of :data:`DEFAULT_AVERAGING_OPTIONS` (``None``: all defaults).

    Returns:
        A new dict with every key; ``modules`` and ``params`` lists become lists of str.

    Example:
        >>> validate_averaging_options({"every": 5})["params"]
        'quantum'
        >>> validate_averaging_options({"evry": 5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown averaging option(s) ['evry']; allowed: ['every', 'modules', ...]
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULT_AVERAGING_OPTIONS))
    if unknown:
        raise ValueError(f"unknown averaging option(s) {unknown}; allowed: {sorted(DEFAULT_AVERAGING_OPTIONS)}")
    out = copy.deepcopy(DEFAULT_AVERAGING_OPTIONS)
    out.update(copy.deepcopy(options))

    every = out["every"]
    if isinstance(every, bool) or not isinstance(every, int):
        raise TypeError(f"averaging option 'every' must be an int >= 1, got {every!r}")
    if every < 1:
        raise ValueError(f"averaging option 'every' must be an int >= 1, got {every!r}")

    modules = out["modules"]
    if modules is not None:
        if isinstance(modules, str) or not isinstance(modules, (list, tuple)):
            raise TypeError(f"averaging option 'modules' must be None (all trained modules) or a list of module ids, got {modules!r}")
        modules = [str(m) for m in modules]
        if len(set(modules)) < 2:
            raise ValueError(f"averaging option 'modules' needs at least 2 distinct module ids to average, got {modules!r}")
        out["modules"] = list(dict.fromkeys(modules))

    params = out["params"]
    if isinstance(params, str):
        if params not in PARAMS_PRESETS:
            raise ValueError(
                f"averaging option 'params' must be one of {list(PARAMS_PRESETS)} or a list of fnmatch patterns "
                f"over state-dict keys (e.g. ['actor.*']), got {params!r}"
            )
    elif isinstance(params, (list, tuple)) and params and all(isinstance(p, str) and p for p in params):
        out["params"] = list(params)
    else:
        raise TypeError(
            f"averaging option 'params' must be one of {list(PARAMS_PRESETS)} or a non-empty list of "
            f"fnmatch patterns (str), got {params!r}"
        )

    for key, allowed in (("weights", WEIGHTINGS), ("optimizer", OPTIMIZER_MODES)):
        if out[key] not in allowed:
            raise ValueError(f"averaging option {key!r} must be one of {list(allowed)}, got {out[key]!r}")
    return out
