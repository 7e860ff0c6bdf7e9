"""Judge trained policies by separate evaluation episodes: fresh env seeds, greedy or sampled actions.

RLlib's per-iteration training mean averages the few episodes that happened to end during one
iteration (1-5 on cooperative pong once policies rally), played with exploration on. The numbers
that judge a policy come from here instead: ``episodes`` new episodes on env seeds that training
never used, every agent acting with its module's greedy (``to_deterministic``) or sampled action,
reported per agent with a 95 % confidence interval.

This runs in the calling process with plain torch (no Ray): the modules come from a checkpoint
(:func:`load_modules`) or from memory, the env from the experiment's registered creator.

Example:
    >>> from rllib_quantum import load_experiment
    >>> from rllib_quantum.evaluation import evaluate_modules
    >>> exp = load_experiment("configs/quantum_independent_pong_features.yaml",
    ...                       overrides={"env_config.max_cycles": 50})
    >>> report = evaluate_modules(exp, exp.build_modules(), episodes=2)
    >>> sorted(report.returns), len(report.returns["paddle_0"])
    (['paddle_0', 'paddle_1'], 2)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import gymnasium as gym
import numpy as np
import torch

from ray.rllib.core.columns import Columns

# Evaluation env seeds start here (plus 1000 x the experiment seed): far from the seeds RLlib
# derives for training env runners (config seed + small worker/env indices).
EVAL_SEED_BASE = 1_000_000


@dataclasses.dataclass
class EvaluationReport:
    """Per-agent returns of evaluation episodes (the game's own reward, undiscounted)."""

    returns: Dict[str, List[float]]
    lengths: List[int]
    seeds: List[int]
    greedy: bool

    def mean(self, agent: str) -> float:
        return statistics.fmean(self.returns[agent])

    def ci95(self, agent: str) -> float:
        """Half-width of the normal-approximation 95 % confidence interval of the mean."""
        values = self.returns[agent]
        return 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")

    def summary(self) -> str:
        """One line: ``greedy, 20 episodes (env seeds a..b), mean length L: agent m +- ci, ...``."""
        per_agent = ", ".join(f"{a} {self.mean(a):.1f} +- {self.ci95(a):.1f}" for a in sorted(self.returns))
        return (
            f"{'greedy' if self.greedy else 'sampled'} actions, {len(self.lengths)} episodes "
            f"(env seeds {self.seeds[0]}..{self.seeds[-1]}), mean length {statistics.fmean(self.lengths):.0f}: {per_agent}"
        )


def eval_seeds(episodes: int, experiment_seed: int | None) -> List[int]:
    """The env seeds of ``episodes`` evaluation episodes for an experiment seeded ``experiment_seed``."""
    start = EVAL_SEED_BASE + 1000 * (experiment_seed or 0)
    return list(range(start, start + episodes))


def load_modules(checkpoint: Union[str, Path]):
    """The trained ``MultiRLModule`` of an RLlib algorithm checkpoint (as the learner held it)."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule

    path = Path(checkpoint) / "learner_group" / "learner" / "rl_module"
    if not path.is_dir():
        raise FileNotFoundError(f"{str(checkpoint)!r} is not an RLlib algorithm checkpoint (no {path})")
    return MultiRLModule.from_checkpoint(path)


def learner_modules(experiment, algo):
    """The modules as ``algo``'s learner holds them now, built locally (env runners lag one update
    behind after ``train()`` returns)."""
    modules = experiment.build_modules()
    modules.set_state(algo.learner_group.get_state(components="learner/rl_module")["learner"]["rl_module"])
    return modules


@dataclasses.dataclass(frozen=True)
class EvaluationSetup:
    """What evaluation episodes need: the env (registered name and config), the agent -> module
    mapping and the experiment's seed (for the evaluation seeds).

    Built from an :class:`~rllib_quantum.config.Experiment` (:meth:`of`) or read back from an
    RLlib algorithm checkpoint (:meth:`from_checkpoint`), so a checkpoint alone is enough.
    """

    env: str
    env_config: Mapping[str, Any]
    policy_mapping_fn: Callable
    seed: Optional[int] = None
    # How env runners turn a Box action into what the env gets (RLlib's AlgorithmConfig keys of the
    # same names): unsquash [-1, 1] to the space's bounds, or clip to them; evaluation does the same.
    normalize_actions: bool = True
    clip_actions: bool = False

    @classmethod
    def of(cls, experiment) -> "EvaluationSetup":
        """The setup of an :class:`~rllib_quantum.config.Experiment` (or an EvaluationSetup)."""
        if isinstance(experiment, cls):
            return experiment
        config = experiment.algo_config
        return cls(experiment.plan.env, experiment.spec["env_config"], experiment.plan.policy_mapping_fn,
                   experiment.spec.get("seed"), config.normalize_actions, config.clip_actions)

    @classmethod
    def from_checkpoint(cls, checkpoint: Union[str, Path]) -> "EvaluationSetup":
        """Reads env, env config, mapping and seed from the algorithm config an RLlib checkpoint
        stores (``class_and_ctor_args.pkl``)."""
        import pickle

        path = Path(checkpoint) / "class_and_ctor_args.pkl"
        if not path.is_file():
            raise FileNotFoundError(f"{str(checkpoint)!r} is not an RLlib algorithm checkpoint (no {path.name})")
        with open(path, "rb") as f:
            args, kwargs = pickle.load(f)["ctor_args_and_kwargs"]
        config = args[0] if args else kwargs["config"]
        if not isinstance(config, dict):
            config = config.to_dict()
        return cls(config["env"], dict(config.get("env_config") or {}), config["policy_mapping_fn"], config.get("seed"),
                   config.get("normalize_actions", True), config.get("clip_actions", False))


def evaluate_modules(
    experiment,
    modules: Mapping,
    episodes: int = 20,
    greedy: bool = True,
    seeds=None,
    frames: Optional[list] = None,
    envs_at_once: int = 32,
) -> EvaluationReport:
    """Plays ``episodes`` fresh episodes of ``experiment``'s env with ``modules``.

    Up to ``envs_at_once`` episodes run side by side, each in its own env and on its own seed, and
    each module acts for all of them in one forward pass per step (one episode after another
    when ``frames`` is given). Greedy play is that of one episode at a time (a row's logits in a
    batch can differ from a lone forward pass only by float rounding; ``tests/test_evaluation.py``
    compares the two); sampled actions come from torch's generator seeded with the first env seed
    (the caller's generator is left as it was), so a call repeats exactly, and its draws depend on
    which episodes share a step.

    Args:
        experiment: an :class:`~rllib_quantum.config.Experiment` or :class:`EvaluationSetup`.
        modules: module id -> RLModule (a ``MultiRLModule`` works).
        episodes: how many episodes (>= 1).
        greedy: deterministic actions (argmax) if true, else sampled from the action distribution.
        seeds: env seeds, one per episode; default :func:`eval_seeds` for the experiment's seed.
        frames: if a list, every step's RGB frame is appended to it (see :mod:`rllib_quantum.video`).
        envs_at_once: episodes played side by side (>= 1).
    """
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from rllib_quantum.envs import ENV_CREATORS

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if isinstance(envs_at_once, bool) or not isinstance(envs_at_once, int) or envs_at_once < 1:
        raise ValueError(f"envs_at_once must be an int >= 1, got {envs_at_once!r}")
    setup = EvaluationSetup.of(experiment)
    seeds = list(seeds) if seeds is not None else eval_seeds(episodes, setup.seed)
    make_env = ENV_CREATORS.get(setup.env) or _global_registry.get(ENV_CREATOR, setup.env)  # else: registered with Tune here
    if frames is not None:
        from rllib_quantum.video import render_frame

        envs_at_once = 1  # the frames of one episode after another
    envs = [make_env(setup.env_config) for _ in range(min(envs_at_once, len(seeds)))]
    finished: Dict[int, _Episode] = {}  # by index into seeds
    playing: Dict[int, _Episode] = {}  # by env slot
    upcoming = iter(enumerate(seeds))

    def start(slot: int) -> None:
        index, seed = next(upcoming, (None, None))
        if index is None:
            playing.pop(slot, None)
            return
        obs, _ = envs[slot].reset(seed=seed)
        playing[slot] = _Episode(index, obs)

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[0])
            for slot in range(len(envs)):
                start(slot)
            while playing:
                slots = list(playing)
                if frames is not None:
                    frames.append(render_frame(envs[slots[0]]))
                actions = _act_many([playing[slot].obs for slot in slots], modules, setup.policy_mapping_fn, greedy, setup)
                for slot, action in zip(slots, actions):
                    episode = playing[slot]
                    episode.obs, rewards, terminateds, truncateds, _ = envs[slot].step(action)
                    for agent, reward in rewards.items():
                        episode.returns[agent] = episode.returns.get(agent, 0.0) + float(reward)
                    episode.length += 1
                    if terminateds.get("__all__", False) or truncateds.get("__all__", False):
                        finished[episode.index] = episode
                        start(slot)
    finally:
        for env in envs:
            env.close()
    in_order = [finished[i] for i in range(len(seeds))]
    returns: Dict[str, List[float]] = {}
    for episode in in_order:
        for agent, total in episode.returns.items():
            returns.setdefault(agent, []).append(total)
    return EvaluationReport(returns, [episode.length for episode in in_order], seeds, greedy)


@dataclasses.dataclass
class _Episode:
    """One evaluation episode in play: its index into the seeds, the last observations, each
    agent's return so far and its steps so far."""

    index: int
    obs: Any
    returns: Dict[str, float] = dataclasses.field(default_factory=dict)
    length: int = 0


def _act(obs: Mapping[str, np.ndarray], modules: Mapping, mapping, greedy: bool, setup: EvaluationSetup) -> Dict[str, np.ndarray]:
    """Every agent's action for one env's observations (see :func:`_act_many`)."""
    return _act_many([obs], modules, mapping, greedy, setup)[0]


@torch.no_grad()
def _act_many(observations: List[Mapping[str, np.ndarray]], modules: Mapping, mapping, greedy: bool, setup: EvaluationSetup) -> List[Dict[str, np.ndarray]]:
    """Every agent's action in each of several envs (their observation dicts): one forward pass
    per module over all the envs' agents it acts for."""
    from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

    by_module: Dict[str, List[tuple]] = {}
    for index, obs in enumerate(observations):
        for agent in obs:
            by_module.setdefault(mapping(agent, None), []).append((index, agent))
    actions: List[Dict[str, np.ndarray]] = [{} for _ in observations]
    for module_id, rows in by_module.items():
        module = modules[module_id]
        values = [observations[index][agent] for index, agent in rows]
        if isinstance(values[0], Mapping):  # Dict observations (e.g. with an action mask), batched per key
            from ray.rllib.utils.spaces.space_utils import batch as batch_of
            from ray.rllib.utils.torch_utils import convert_to_torch_tensor

            batch = convert_to_torch_tensor(batch_of(values))
        else:
            batch = torch.as_tensor(np.stack(values), dtype=torch.float32)
        logits = module.forward_inference({Columns.OBS: batch})[Columns.ACTION_DIST_INPUTS]
        dist = module.get_inference_action_dist_cls().from_logits(logits)
        chosen = (dist.to_deterministic() if greedy else dist).sample().numpy()
        space = getattr(module, "action_space", None)
        if isinstance(space, gym.spaces.Box):  # as RLlib's env runners send Box actions to the env
            if setup.normalize_actions:  # both broadcast over the batch rows
                chosen = unsquash_action(chosen, space)
            elif setup.clip_actions:
                chosen = clip_action(chosen, space)
        for (index, agent), action in zip(rows, chosen):
            actions[index][agent] = action
    return actions
