"""What the non-finite checks cost: QuantumPPORLModule forward passes with and without them.

The module checks its observation on the way in and its logits (or values) on the way out (one
sum per tensor, ``rllib_quantum.modules.quantum_ppo_rlm.all_finite``); the learner checks each
loss and, after every optimizer step, every parameter. Measured here, in one process, on the shipped features module (5 qubits, 4
re-uploading layers, linear read-out, 32x32 critic), same inputs and weights, checks on and off
(off: the check replaced by a no-op):

* ``forward_exploration``: what an env runner calls every step, under ``torch.no_grad()``
  (batch 1 and 16: one env, or the configs' 16 envs per runner);
* ``forward_train + compute_values + backward``: one minibatch of the learner (batch 2000);
* ``parameter check``: the learner's per-step check of one module's parameters.

Run:
    python benchmarks/safety_overhead.py
    python benchmarks/safety_overhead.py --batches 1 16 64 --threads 1
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import torch
from common import median_seconds, parse_args, setup_torch


@dataclasses.dataclass
class Args:
    batches: Tuple[int, ...] = (1, 16)
    """env-runner batch sizes (rows per forward_exploration)"""
    train_batch: int = 2000
    """learner minibatch rows (the quantum features config: 2000)"""
    threads: int = 1
    """torch intra-op threads (an RLlib env runner uses 1)"""
    min_seconds: float = 2.0
    """minimum measuring time per number"""
    seed: int = 0


def main() -> None:
    args = parse_args(Args, __doc__.splitlines()[0])
    print(setup_torch(args.threads, args.seed))
    import gymnasium as gym
    import numpy as np
    from ray.rllib.core.columns import Columns

    from rllib_quantum import load_experiment
    from rllib_quantum.modules import QuantumPPORLModule
    from rllib_quantum.modules.quantum_ppo_rlm import all_finite

    exp = load_experiment("configs/quantum_independent_pong_features.yaml")
    spec = exp.algo_config.rl_module_spec.rl_module_specs["paddle_0"]
    module = spec.build()
    assert isinstance(module, QuantumPPORLModule) and isinstance(spec.observation_space, gym.spaces.Box)
    checked = QuantumPPORLModule._check_finite

    def timed(fn):
        QuantumPPORLModule._check_finite = checked
        on = median_seconds(fn, args.min_seconds)
        QuantumPPORLModule._check_finite = lambda self, tensor, what, where: tensor
        try:
            off = median_seconds(fn, args.min_seconds)
        finally:
            QuantumPPORLModule._check_finite = checked
        return on, off

    rows = []
    for batch in args.batches:
        obs = torch.as_tensor(np.stack([spec.observation_space.sample() for _ in range(batch)]))

        def explore(obs=obs):
            with torch.no_grad():
                module.forward_exploration({Columns.OBS: obs})

        rows.append((f"forward_exploration, batch {batch} (no_grad)", *timed(explore)))

    obs = torch.as_tensor(np.stack([spec.observation_space.sample() for _ in range(args.train_batch)]))

    def train_step():
        module.zero_grad(set_to_none=True)
        out = module.forward_train({Columns.OBS: obs})
        values = module.compute_values({Columns.OBS: obs}, embeddings=out[Columns.EMBEDDINGS])
        (out[Columns.ACTION_DIST_INPUTS].sum() + values.sum()).backward()

    rows.append((f"forward_train + compute_values + backward, batch {args.train_batch}", *timed(train_step)))

    params = [p for p in module.parameters() if p.is_floating_point()]
    param_check = median_seconds(lambda: all(map(all_finite, params)), args.min_seconds)

    print(f"{'pass':<58} {'checks on':>12} {'checks off':>12} {'overhead':>10}")
    for name, on, off in rows:
        print(f"{name:<58} {on * 1e6:>9.1f} us {off * 1e6:>9.1f} us {(on - off) * 1e6:>7.1f} us ({(on / off - 1) * 100:+.1f} %)")
    print(f"{'learner parameter check, one module (' + str(len(params)) + ' tensors)':<58} {param_check * 1e6:>9.1f} us")


if __name__ == "__main__":
    main()
