"""Greedy against sampled play over a run's last iterates, and of their averaged weights.

A trial trained with ``--set checkpoint.frequency=1`` keeps a checkpoint after every iteration.
This plays each of its last ``last`` checkpoints on ``episodes`` evaluation episodes (the env
seeds ``rllib-quantum evaluate`` uses, the same for every checkpoint), once with greedy and once
with sampled actions, then the same for the modules whose weights (and buffers) are the mean over
the last 3, 5, ... of those checkpoints. Asks whether a greedy miss beside a high
training return is a bad draw of the final iterate (greedy play would then vary from iterate to
iterate, and averaging iterates would help) or the policy's own (greedy below sampled on every
iterate). Prints one line per checkpoint and per average: per-agent means with 95 % CIs.

    rllib-quantum train configs/quantum_independent_pong_features.yaml --set seed=51 --set checkpoint.frequency=1 --storage results/UC
    python benchmarks/last_iterates.py --trial results/UC/quantum-independent-pong-features/PPO_... [--last 10] [--episodes 100]
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from common import parse_args


@dataclasses.dataclass
class Args:
    trial: str = ""  # a Tune trial folder holding checkpoint_000000, checkpoint_000001, ...
    last: int = 10  # how many of its last checkpoints to play
    episodes: int = 100  # evaluation episodes per checkpoint and mode
    averages: tuple = (3, 5, 10)  # average the weights of the last k checkpoints, for each k <= last


def averaged(modules: list):
    """A copy of the last ``MultiRLModule`` with every state entry replaced by its uniform mean over
    ``modules``, computed as ``ParameterAveragingCallback`` averages (``weighted_mean``)."""
    from rllib_quantum.callbacks.selection import weighted_mean

    out = copy.deepcopy(modules[-1])
    for module_id in out.keys():
        states = {i: {k: v.numpy() for k, v in m[module_id].state_dict().items()} for i, m in enumerate(modules)}
        mean = weighted_mean(states, {i: 1.0 for i in states})
        out[module_id].load_state_dict({k: torch.as_tensor(v) for k, v in mean.items()})
    return out


def play(setup, modules, episodes: int) -> str:
    from rllib_quantum.evaluation import evaluate_modules

    cells = []
    for greedy in (True, False):
        report = evaluate_modules(setup, modules, episodes=episodes, greedy=greedy)
        scores = ", ".join(f"{a} {report.mean(a):.1f} +- {report.ci95(a):.1f}" for a in sorted(report.returns))
        cells.append(f"{'greedy' if greedy else 'sampled'} {scores}")
    return " | ".join(cells)


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    from rllib_quantum.envs import register_envs
    from rllib_quantum.evaluation import EvaluationSetup, load_modules

    checkpoints = sorted(Path(args.trial).glob("checkpoint_*"))
    if len(checkpoints) < 2:
        raise SystemExit(f"benchmarks/last_iterates.py: error: --trial {args.trial}: needs 2 or more checkpoint_* folders, "
                         f"found {len(checkpoints)} (train with --set checkpoint.frequency=1)")
    register_envs()
    setup = EvaluationSetup.from_checkpoint(checkpoints[-1])
    kept = []
    for checkpoint in checkpoints[-args.last:]:
        kept.append(load_modules(checkpoint))
        print(f"{checkpoint.name}: {play(setup, kept[-1], args.episodes)}", flush=True)
    for k in args.averages:
        if 2 <= k <= len(kept):
            print(f"weights averaged over the last {k}: {play(setup, averaged(kept[-k:]), args.episodes)}", flush=True)


if __name__ == "__main__":
    main()
