"""Which parameters of which modules get averaged, and the averaging arithmetic (numpy, no Ray).

A *catalog* describes modules without holding them: ``{module_id: {"shapes": {key: shape},
"floating": [keys], "quantum": [keys]}}``; it is built where the modules live (a learner, or
locally from a spec) and sent back to the driver, so the checks run the same everywhere.

Example:
    >>> import numpy as np
    >>> states = {"a": {"w": np.zeros(2)}, "b": {"w": np.full(2, 2.0)}}
    >>> mean = weighted_mean(states, {"a": 1.0, "b": 1.0})
    >>> mean["w"].tolist(), divergence(states, mean)
    ([1.0, 1.0], 1.4142135623730951)
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from rllib_quantum.errors import ConfigError

Catalog = Dict[str, Dict[str, Any]]


def describe_module(module) -> Dict[str, Any]:
    """Shapes, floating-point keys and circuit-parameter keys of one torch ``RLModule``."""
    import torch

    from rllib_quantum.circuits import QuantumLayer

    module = module.unwrapped() if hasattr(module, "unwrapped") else module
    state = module.state_dict()
    quantum = [
        f"{prefix}.{name}" if prefix else name
        for prefix, sub in module.named_modules()
        if isinstance(sub, QuantumLayer)
        for name, _ in sub.named_parameters()
    ]
    return {
        "shapes": {k: tuple(v.shape) for k, v in state.items()},
        "floating": [k for k, v in state.items() if torch.is_floating_point(v)],
        "quantum": [k for k in quantum if k in state],
    }


def describe_multi_module(multi_module) -> Catalog:
    """:func:`describe_module` for each module of a ``MultiRLModule``."""
    return {str(mid): describe_module(multi_module[mid]) for mid in multi_module.keys()}


def check_module_ids(wanted: Optional[Sequence[str]], known: Sequence[str]) -> List[str]:
    """The module ids to average (``None``: all ``known``); raises ``ConfigError`` (key
    ``modules``, the option) naming unknown ids, or when fewer than 2 modules remain."""
    known = [str(m) for m in known]
    if wanted is None:
        wanted = known
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ConfigError("modules", f"unknown module id(s) {unknown}; known modules: {known}")
    if len(wanted) < 2:
        raise ConfigError("modules", f"parameter averaging needs at least 2 modules, but only {list(wanted)} "
                          "are trained; use strategy 'independent'/'averaged' with several agents, or list the modules")
    return list(wanted)


def select_params(params: Any, module_ids: Sequence[str], catalog: Catalog) -> List[str]:
    """Resolves the ``params`` option to one list of state-dict keys shared by ``module_ids``.

    Raises ``ConfigError`` (key ``params``, the option) naming the module and state-dict key when a
    preset or pattern matches nothing, when the modules' chosen keys differ, or when a chosen key
    differs in shape.
    """
    chosen: Dict[str, List[str]] = {}
    for mid in module_ids:
        info = catalog[mid]
        floating = info["floating"]
        if params == "quantum":
            keys = list(info["quantum"])
            if not keys:
                raise ConfigError(
                    "params",
                    f"'quantum' but module {mid!r} has no quantum circuit parameters (no QuantumLayer); "
                    "use params: 'all' or a list of patterns for classical modules",
                )
        elif params == "all":
            keys = list(floating)
        else:
            keys = []
            for pattern in params:
                hits = [k for k in floating if fnmatch.fnmatchcase(k, pattern)]
                if not hits:
                    raise ConfigError(
                        "params",
                        f"pattern {pattern!r} matches no floating-point state-dict key of module {mid!r}; "
                        f"its keys: {floating}",
                    )
                keys += [k for k in hits if k not in keys]
        chosen[mid] = keys

    first = module_ids[0]
    for mid in module_ids[1:]:
        if set(chosen[mid]) != set(chosen[first]):
            only_first = sorted(set(chosen[first]) - set(chosen[mid]))
            only_other = sorted(set(chosen[mid]) - set(chosen[first]))
            raise ConfigError(
                "params",
                f"modules {first!r} and {mid!r} have different chosen parameters "
                f"(only in {first!r}: {only_first}; only in {mid!r}: {only_other})",
            )
        for key in chosen[first]:
            a, b = catalog[first]["shapes"][key], catalog[mid]["shapes"][key]
            if a != b:
                raise ConfigError(
                    "params",
                    f"parameter {key!r} has shape {a} in module {first!r} but {b} in module {mid!r}; "
                    "only modules with the same architecture can be averaged (choose other params or modules)",
                )
    return chosen[first]


def weighted_mean(states: Mapping[str, Mapping[str, np.ndarray]], weights: Mapping[str, float]) -> Dict[str, np.ndarray]:
    """Per key, ``sum_m w_m * states[m][key] / sum_m w_m`` (float64 math, each key's dtype kept)."""
    total = float(sum(weights.values()))
    mids = list(states)
    out = {}
    for key in states[mids[0]]:
        acc = sum(float(weights[m]) * np.asarray(states[m][key], dtype=np.float64) for m in mids) / total
        out[key] = acc.astype(np.asarray(states[mids[0]][key]).dtype)
    return out


def divergence(states: Mapping[str, Mapping[str, np.ndarray]], mean: Mapping[str, np.ndarray]) -> float:
    """Mean over modules of the L2 distance between a module's chosen parameters and ``mean``."""
    dists = []
    for state in states.values():
        sq = sum(float(np.sum((np.asarray(state[k], np.float64) - np.asarray(mean[k], np.float64)) ** 2)) for k in mean)
        dists.append(np.sqrt(sq))
    return float(np.mean(dists))


def round_weights(mode: str, module_ids: Sequence[str], steps: Mapping[str, Any] | None) -> Dict[str, float]:
    """``uniform``: 1 each; ``agent_steps``: the modules' sampled agent steps (uniform if all 0)."""
    if mode == "uniform":
        return {m: 1.0 for m in module_ids}
    steps = steps or {}
    w = {m: float(steps.get(m, 0) or 0) for m in module_ids}
    if sum(w.values()) <= 0:
        return {m: 1.0 for m in module_ids}
    return w
