"""One PPO learner update with RLlib's per-agent batching and with the package's vectorised twins.

``FastBatchingPPOTorchLearner`` (the base of ``QuantumPPOTorchLearner``, and the classical YAML
experiments' learner) replaces three steps of RLlib's PPO update with equal, faster ones
(``rllib_quantum/learners/batching.py``): the first learner connector piece, GAE's value targets and
the minibatch iterator. This script times ``learner.update(episodes=...)`` on the same sampled
episodes with both, in turns on the same learner:

- ``vectorised``  the learner as built (the package's pieces and iterator)
- ``rllib``       the same learner with RLlib's own connector pieces (``AddOneTsToEpisodesAndTruncate``
                  and the episode-to-batch pieces the package fuses, ``GeneralAdvantageEstimation``)
                  and ``MiniBatchCyclicIterator`` put back

Configs: MPE simple spread with N agents (``configs/quantum_independent_spread.yaml``, stacked, and
``configs/classical_independent_spread.yaml``) and the two paddles of cooperative pong
(``configs/quantum_independent_pong_features.yaml`` with its own 8000-step batches). Each update
gets a fresh deep copy of the episodes (the pipeline extends them; the copy is not timed). Ends
with the median time per update and the ratio vectorised / rllib per config.

    python benchmarks/learner_batching.py [--agents 2 16] [--rounds 6] [--no-pong]
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
import types
from pathlib import Path

from common import parse_args, setup_torch, start_ray

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    agents: tuple = (2, 16)  # N for simple spread
    batch: int = 800  # env steps per update on simple spread (as benchmarks/agent_scaling.py)
    minibatch: int = 200
    epochs: int = 2
    rounds: int = 6  # each round: one update of each kind, in alternating order
    pong: bool = True  # also the pong features config with its own batch settings
    threads: int = 1
    seed: int = 0


def configs(args: Args) -> dict:
    spread = {
        "ppo.train_batch_size_per_learner": args.batch, "ppo.minibatch_size": args.minibatch,
        "ppo.num_epochs": args.epochs, "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 8,
        "seed": args.seed,
    }
    out = {}
    for n in args.agents:
        out[f"spread N={n}, quantum stacked"] = ("quantum_independent_spread", {**spread, "env_config.N": n, "stack_modules": True})
        out[f"spread N={n}, classical"] = ("classical_independent_spread", {**spread, "env_config.N": n})
    if args.pong:  # the shipped settings: 8000-step batches, minibatch 2000, 8 epochs; envs on the local runner
        out["pong features, quantum"] = ("quantum_independent_pong_features", {
            "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 128, "seed": args.seed})
    return out


def use_rllibs_batching(learner, on: bool) -> None:
    """Puts RLlib's own PPO connector pieces and its minibatch iterator back (or the package's)."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from rllib_quantum.learners.batching import rllibs_pieces, vectorised_pipeline

    pieces = learner._learner_connector.connectors
    pieces[:] = rllibs_pieces(pieces)
    if on:
        learner._create_iterator_if_necessary = types.MethodType(PPOTorchLearner._create_iterator_if_necessary, learner)
    else:  # what FastBatchingPPOTorchLearner.build() does
        pieces[:] = vectorised_pipeline(pieces)
        learner.__dict__.pop("_create_iterator_if_necessary", None)


def time_config(name: str, overrides: dict, rounds: int) -> dict:
    from rllib_quantum.config import load_experiment

    exp = load_experiment(ROOT / "configs" / f"{name}.yaml", overrides)
    algo = exp.algo_config.build_algo()
    try:
        learner, config = algo.learner_group._learner, exp.algo_config
        episodes = algo.env_runner.sample(num_timesteps=config.train_batch_size_per_learner)
        kwargs = dict(num_epochs=config.num_epochs, minibatch_size=config.minibatch_size,
                      shuffle_batch_per_epoch=config.shuffle_batch_per_epoch, timesteps={})
        times = {"vectorised": [], "rllib": []}
        for r in range(rounds + 1):  # round 0 warms both up
            order = ("vectorised", "rllib") if r % 2 else ("rllib", "vectorised")
            for kind in order:
                use_rllibs_batching(learner, kind == "rllib")
                data = copy.deepcopy(episodes)
                start = time.perf_counter()
                learner.update(episodes=data, **kwargs)
                if r:
                    times[kind].append(time.perf_counter() - start)
        use_rllibs_batching(learner, False)
        return {kind: statistics.median(t) for kind, t in times.items()}
    finally:
        algo.stop()


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    print(setup_torch(args.threads, args.seed))
    start_ray()
    rows = {}
    for label, (name, overrides) in configs(args).items():
        rows[label] = time_config(name, overrides, args.rounds)
        print(f"{label}: vectorised {rows[label]['vectorised'] * 1e3:.1f} ms, rllib {rows[label]['rllib'] * 1e3:.1f} ms")
    print(f"\nmedian milliseconds per learner update over {args.rounds} rounds (the two kinds in turns)\n")
    print("| config | RLlib's batching | vectorised | vectorised / RLlib's |")
    print("| --- | ---: | ---: | ---: |")
    for label, t in rows.items():
        print(f"| {label} | {t['rllib'] * 1e3:.1f} | {t['vectorised'] * 1e3:.1f} | {t['vectorised'] / t['rllib']:.2f} |")


if __name__ == "__main__":
    main()
