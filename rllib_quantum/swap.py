"""Swap quantum policies into an RLlib ``PPOConfig`` the package did not write.

Example (RLlib's ``pettingzoo_independent_learning.py`` style)::

    config = (
        PPOConfig()
        .environment("rllib_quantum/cooperative_pong", env_config={"obs": "features"})
        .multi_agent(policies={"paddle_0", "paddle_1"}, policy_mapping_fn=lambda aid, *a, **k: aid)
        .rl_module(rl_module_spec=MultiRLModuleSpec(
            rl_module_specs={p: RLModuleSpec() for p in ("paddle_0", "paddle_1")}))
        .training(lr=0.001)
    )
    quantum = with_quantum_policies(config, modules=["paddle_0"], circuit={"n_qubits": 5, "n_layers": 2})
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_quantum import safety
from rllib_quantum.errors import ConfigError
from rllib_quantum.modules import QuantumPPORLModule, StackedQuantumMultiRLModule, spec_model_config, validate_model_config


def _known_module_ids(config) -> List[str]:
    spec = config._rl_module_spec
    if config.is_multi_agent:
        ids = list(config.policies)
        if isinstance(spec, MultiRLModuleSpec):
            ids += [m for m in spec.rl_module_specs if m not in ids]
        return [str(m) for m in ids]
    return [DEFAULT_MODULE_ID]


def _module_model_config(model_config: dict, obs, act, module_id: str, config, whose: str = "") -> dict:
    """``spec_model_config`` for one module, its errors keyed ``model_config['<id>'].<key>``, or
    ``modules['<id>'].<space>`` for a space no quantum module takes (``whose`` says where the
    space came from)."""
    try:
        return spec_model_config(model_config, obs, act, module_id=module_id, seed=config.seed, prefix=f"model_config[{module_id!r}]")
    except ConfigError as err:
        if err.key in ("observation_space", "action_space"):  # the module's spaces, not an argument
            raise ConfigError(f"modules[{module_id!r}].{err.key}", err.problem + whose) from None
        raise


def _quantum_spec(old: Optional[RLModuleSpec], model_config: dict, config, module_id: str) -> RLModuleSpec:
    obs = old.observation_space if old is not None else None
    act = old.action_space if old is not None else None
    if not config.is_multi_agent:  # single agent: spaces may sit on the config itself
        obs = obs or config.observation_space
        act = act or config.action_space
    # Keys are checked now; with known spaces also the encoder/action-space fit (errors name the
    # module: model_config['paddle_0'].readout) and the spec holds the resolved config. Spaces
    # left None are inferred by RLlib from the env when the algorithm is built. The module id is
    # named in the module's numerical-safety errors; the seed (set it before swapping) seeds the
    # init independently of build order.
    cfg = _module_model_config(model_config, obs, act, module_id, config)
    return RLModuleSpec(
        module_class=QuantumPPORLModule,
        observation_space=obs,
        action_space=act,
        inference_only=old.inference_only if old is not None else False,
        model_config=cfg,
    )


def _spaces_from_env(config) -> Dict[str, Tuple[Any, Any]]:
    """``{module id: (observation space, action space)}`` read from one env built here from the
    config's ``env`` and ``env_config``, the way RLlib's env runners will build it (multi-agent: each
    module's spaces through ``policy_mapping_fn``, as RLlib infers them); ``{}`` when the env cannot
    be built in this process (its fit with the modules is then checked when the algorithm builds
    them)."""
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.env.env_context import EnvContext

    if config.env is None:
        return {}
    try:
        _, creator = Algorithm._get_env_id_and_creator(config.env, config)
        env = creator(EnvContext(config.env_config, worker_index=0))
    except Exception:
        return {}
    try:
        if config._env_to_module_connector is not None:  # the user's pieces may reshape observations
            return _spaces_after_connectors(config, env)
        if not config.is_multi_agent:
            return {DEFAULT_MODULE_ID: (env.observation_space, env.action_space)}
        policies, _ = config.get_multi_agent_setup(env=env)
        return {
            str(mid): (p.observation_space, p.action_space)
            for mid, p in policies.items()
            if p.observation_space is not None and p.action_space is not None
        }
    except Exception:
        return {}
    finally:
        try:
            env.close()
        except Exception:
            pass


def _spaces_after_connectors(config, env) -> Dict[str, Tuple[Any, Any]]:
    """The modules' spaces as an env runner gives them when ``config`` has an
    ``env_to_module_connector`` of the user's (``PrevActionsPrevRewards``, ``FlattenObservations``,
    frame stacking, ...): the output spaces of the env-to-module pipeline built on ``env``'s spaces
    (``MultiAgentEnvRunner.get_spaces`` / ``SingleAgentEnvRunner.get_spaces`` in RLlib 2.60), not
    the env's own. The connector factory is called with ``env=None`` and the env's spaces, as its
    signature allows; one that needs the (vectorised) env raises, and the caller skips the check."""
    from gymnasium import spaces as gym_spaces
    from ray.rllib.env import INPUT_ENV_SINGLE_SPACES

    if config.is_multi_agent:
        agents = list(env.possible_agents)
        obs = gym_spaces.Dict({aid: env.get_observation_space(aid) for aid in agents})
        act = gym_spaces.Dict({aid: env.get_action_space(aid) for aid in agents})
    else:
        obs, act = env.observation_space, env.action_space
    pipeline = config.build_env_to_module_connector(env=None, spaces={INPUT_ENV_SINGLE_SPACES: (obs, act)})
    if not config.is_multi_agent:
        return {DEFAULT_MODULE_ID: (pipeline.observation_space, act)}
    return {str(mid): (space, pipeline.action_space[mid]) for mid, space in pipeline.observation_space.spaces.items()}


def _check_no_search_spaces(value: Any, key: str) -> None:
    """A Tune search space (``tune.grid_search``, ``tune.choice``, ...) among the quantum options
    would reach the modules' specs unresolved: Tune resolves ``param_space`` entries, not values
    inside an ``RLModuleSpec``. Refused with the two ways that work."""
    from ray.tune.search.sample import Domain

    if isinstance(value, Domain) or (isinstance(value, Mapping) and set(value) == {"grid_search"}):
        shown = repr(value) if isinstance(value, Mapping) else f"tune {type(value).__name__}"
        raise ConfigError(
            key,
            f"is a Tune search space ({shown}); with_quantum_policies checks its options and builds them "
            "into the modules' specs now, where Tune does not resolve them: call with_quantum_policies "
            "inside a function trainable, once per trial (tune.Tuner(trainable, param_space={...})), or "
            "search a YAML experiment with `rllib-quantum tune` and a search file; search spaces over the "
            "returned config's own keys (config.training(lr=tune.grid_search([...]))) work as in RLlib",
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_no_search_spaces(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_no_search_spaces(v, f"{key}[{i}]")


def _check_mapping_signature(config) -> None:
    """RLlib's new API stack calls ``policy_mapping_fn(agent_id, episode)``; an old-stack signature
    with more required parameters, such as ``(agent_id, episode, worker, **kwargs)``, would raise a
    ``TypeError`` inside every env runner."""
    import inspect

    fn = config.policy_mapping_fn
    if not config.is_multi_agent or not callable(fn):
        return
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return
    try:
        signature.bind("agent_id", "episode")
    except TypeError as err:
        raise ConfigError(
            "policy_mapping_fn",
            f"RLlib's new API stack calls it as fn(agent_id, episode); {getattr(fn, '__qualname__', type(fn).__name__)}"
            f"{signature} cannot take that ({err}): give its other parameters defaults (e.g. worker=None) "
            f"or collect them with *args / **kwargs",
        ) from None


def _check_learner_reads(learner_class, model_config: dict) -> None:
    """Options that only :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` carries out
    (per-group lrs, natural-gradient steps, an inverse-temperature schedule) would be silently
    ignored by a learner class of the user's own that does not derive from it."""
    from rllib_quantum.learners import QuantumPPOTorchLearner

    if isinstance(learner_class, type) and issubclass(learner_class, QuantumPPOTorchLearner):
        return
    multipliers = model_config.get("lr_multipliers")
    schedule = model_config.get("inverse_temperature")
    asked = {
        "natural_gradient": model_config.get("natural_gradient") is not None,
        "lr_multipliers": isinstance(multipliers, dict) and any(float(v) != 1.0 for v in multipliers.values()),
        "inverse_temperature": isinstance(schedule, (list, tuple)),  # a constant is the module's own
    }
    for key, used in asked.items():
        if used:
            name = getattr(learner_class, "__qualname__", repr(learner_class))
            raise ConfigError(
                f"model_config.{key}",
                f"is carried out by rllib_quantum.learners.QuantumPPOTorchLearner, and this config's "
                f"learner_class {name} does not derive from it, so it would be ignored: derive your learner "
                f"from QuantumPPOTorchLearner (it trains classical modules as PPO's learner does) or leave {key} out",
            )


def _check_against_env(specs: Dict[str, RLModuleSpec], wanted: List[str], config, model_config: dict) -> None:
    """Quantum modules whose spaces the config leaves to RLlib are built here once on the env's
    spaces (and run one forward pass): a model_config that does not fit them (too few qubits for
    the read-out, an unsupported space, ...) fails now, naming the module, not in an env runner."""
    from rllib_quantum.config import build_module_checked

    missing = [m for m in wanted if specs[m].observation_space is None or specs[m].action_space is None]
    spaces = _spaces_from_env(config) if missing else {}
    for mid in sorted(missing):  # a set of policies has no fixed order: the first error is always the same module's
        if mid not in spaces:
            continue
        obs, act = spaces[mid]
        cfg = _module_model_config(model_config, obs, act, mid, config, whose=" (the env's space for this module)")
        probe = RLModuleSpec(module_class=QuantumPPORLModule, observation_space=obs, action_space=act, model_config=cfg)
        with torch.random.fork_rng(devices=[]):  # the probe leaves the caller's torch RNG untouched
            build_module_checked(mid, probe, key=f"model_config[{mid!r}]")


def with_quantum_policies(
    config: PPOConfig, modules: Optional[Iterable[str]] = None, *, stack: bool = True, **model_config: Any
) -> PPOConfig:
    """A copy of ``config`` whose chosen modules are :class:`QuantumPPORLModule` s.

    Everything else (env, spaces, ``policies``, ``policy_mapping_fn``, PPO and resource
    settings, callbacks, the other modules' specs) is left as it was, except that a config on
    PPO's default learner gets :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` (which
    trains classical modules exactly as PPO's learner does). ``config`` is not changed.

    Args:
        config: an RLlib ``PPOConfig`` on the new API stack, single- or multi-agent.
        modules: module ids to replace (default ``None``: all of them). Single-agent configs
            have the one id ``"default_policy"``.
        stack: multi-agent configs on RLlib's own ``MultiRLModule`` get
            :class:`~rllib_quantum.modules.StackedQuantumMultiRLModule` (same-shaped quantum
            policies share each circuit call; same results); ``False`` keeps ``MultiRLModule``.
            A ``MultiRLModule`` subclass of your own is always kept.
        **model_config: the quantum modules' ``model_config`` keys (e.g. ``circuit={"n_qubits":
            5, "n_layers": 2}``, ``critic="classical"``), validated now.

    Returns:
        A new ``PPOConfig``.

    Raises:
        ConfigError: keyed by the argument: ``config`` (not a ``PPOConfig``, as only PPO is
            supported, or on the old API stack), ``modules`` (unknown module ids; the message
            lists the known ones), ``model_config.<key>`` (a bad keyword, e.g.
            ``model_config.circuit.n_qubits``), ``model_config['<module id>'].<key>`` (a keyword
            that does not fit that module's spaces, e.g. ``model_config['paddle_0'].readout``) or
            ``modules['<module id>'].action_space`` (a space no quantum module takes) or
            ``policy_mapping_fn`` (a signature RLlib's new API stack cannot call with
            ``(agent_id, episode)``, e.g. the old stack's required ``worker``), or
            ``model_config.natural_gradient`` / ``lr_multipliers`` / an ``inverse_temperature``
            schedule with a ``learner_class`` of your own that does not derive from
            ``QuantumPPOTorchLearner`` (which carries them out), or a Tune search space among
            the keywords (keyed by its path, e.g. ``model_config.circuit.n_layers``). Spaces the
            config leaves to RLlib are read from one env built here (as RLlib's env runners will
            build it, and through the config's ``env_to_module_connector`` if it has one, which
            may reshape observations), so these errors come before any Ray worker starts; an env that cannot be
            built in this process leaves the check to the algorithm's build.

    Example:
        >>> from ray.rllib.algorithms.ppo import PPOConfig
        >>> cfg = PPOConfig().environment("CartPole-v1").training(lr=0.01)
        >>> q = with_quantum_policies(cfg, circuit={"n_qubits": 4, "n_layers": 1})
        >>> q.lr, q.rl_module_spec.module_class.__name__
        (0.01, 'QuantumPPORLModule')
    """
    if not isinstance(config, PPOConfig):
        raise ConfigError(
            "config",
            f"must be a PPOConfig (with_quantum_policies supports PPO only: QuantumPPORLModule is a PPO "
            f"actor-critic), got {type(config).__name__}",
        )
    if not config.enable_rl_module_and_learner:
        raise ConfigError("config", "must be on RLlib's new API stack (RLModules); this config uses the old stack")
    known = _known_module_ids(config)
    if modules is not None and not hasattr(modules, "__iter__"):
        raise ConfigError("modules", f"must be None (all modules) or a list of module ids, got {modules!r}")
    wanted = known if modules is None else [str(m) for m in ([modules] if isinstance(modules, str) else modules)]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ConfigError("modules", f"unknown module id(s) {unknown}; known modules: {sorted(known)}")
    if not wanted:
        raise ConfigError("modules", f"must not be empty; known modules: {sorted(known)}")
    if not isinstance(stack, bool):
        raise ConfigError("stack", f"must be True or False, got {stack!r}")
    for key, value in model_config.items():
        _check_no_search_spaces(value, f"model_config.{key}")
    validate_model_config(model_config, prefix="model_config")  # the space-free checks once, keyed model_config.<key>

    _check_mapping_signature(config)
    new = config.copy(copy_frozen=False)
    if new._learner_class is None:  # PPO's own torch learner: add per-group lrs and circuit diagnostics
        from rllib_quantum.learners import QuantumPPOTorchLearner

        new.learners(learner_class=QuantumPPOTorchLearner)
    _check_learner_reads(new._learner_class, model_config)
    safety.install(new)  # a nan/inf met by a remote env runner stops the run (see rllib_quantum.safety)
    old_spec = new._rl_module_spec
    if not new.is_multi_agent:
        single = old_spec if isinstance(old_spec, RLModuleSpec) else None
        spec = _quantum_spec(single, model_config, new, DEFAULT_MODULE_ID)
        _check_against_env({DEFAULT_MODULE_ID: spec}, [DEFAULT_MODULE_ID], new, model_config)
        return new.rl_module(rl_module_spec=spec)

    if isinstance(old_spec, MultiRLModuleSpec):
        specs = dict(old_spec.rl_module_specs)
    elif isinstance(old_spec, RLModuleSpec):  # one spec used for every module
        specs = {m: old_spec for m in known}
    else:  # policies only: every module gets RLlib's default spec, filled in when the algo is built
        specs = {m: RLModuleSpec() for m in known}
    for mid in wanted:
        specs[mid] = _quantum_spec(specs.get(mid), model_config, new, mid)
    _check_against_env(specs, wanted, new, model_config)
    # RLlib's own MultiRLModule becomes the stacked one (same results, one circuit call per group of
    # same-shaped quantum policies); a user's own MultiRLModule subclass is kept.
    multi_class = old_spec.multi_rl_module_class if isinstance(old_spec, MultiRLModuleSpec) else MultiRLModule
    if multi_class is MultiRLModule and stack:
        multi_class = StackedQuantumMultiRLModule
    multi = MultiRLModuleSpec(multi_rl_module_class=multi_class, rl_module_specs=specs)
    return new.rl_module(rl_module_spec=multi)
