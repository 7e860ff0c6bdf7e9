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

from rllib_quantum.errors import ConfigError

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

    Raises:
        ConfigError: keyed by the option (``"every"``, ...; ``""`` for a non-mapping or unknown
            options); the experiment loader reports it under ``averaging.``.

    Example:
        >>> validate_averaging_options({"every": 5})["params"]
        'quantum'
        >>> validate_averaging_options({"evry": 5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: unknown key(s) ['evry']; allowed: ['every', 'modules', ...]
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError("", f"must be a mapping of options {sorted(DEFAULT_AVERAGING_OPTIONS)}, got {options!r}")
    options = dict(options)
    unknown = sorted(str(k) for k in set(options) - set(DEFAULT_AVERAGING_OPTIONS))
    if unknown:
        raise ConfigError("", f"unknown key(s) {unknown}; allowed: {sorted(DEFAULT_AVERAGING_OPTIONS)}")
    out = copy.deepcopy(DEFAULT_AVERAGING_OPTIONS)
    out.update(copy.deepcopy(options))

    every = out["every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError("every", f"must be an int >= 1, got {every!r} ({type(every).__name__})")

    modules = out["modules"]
    if modules is not None:
        if isinstance(modules, str) or not isinstance(modules, (list, tuple)):
            raise ConfigError("modules", f"must be None (all trained modules) or a list of module ids, got {modules!r}")
        modules = [str(m) for m in modules]
        if len(set(modules)) < 2:
            raise ConfigError("modules", f"must list at least 2 distinct module ids to average, got {modules!r}")
        out["modules"] = list(dict.fromkeys(modules))

    params = out["params"]
    if isinstance(params, (list, tuple)) and params and all(isinstance(p, str) and p for p in params):
        out["params"] = list(params)
    elif not (isinstance(params, str) and params in PARAMS_PRESETS):
        raise ConfigError(
            "params",
            f"must be one of {list(PARAMS_PRESETS)} or a non-empty list of fnmatch patterns over state-dict keys "
            f"(e.g. ['actor.*']), got {params!r}",
        )

    for key, allowed in (("weights", WEIGHTINGS), ("optimizer", OPTIMIZER_MODES)):
        if out[key] not in allowed:
            raise ConfigError(key, f"must be one of {list(allowed)}, got {out[key]!r}")
    return out
