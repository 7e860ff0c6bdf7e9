"""What the swap-in examples print while they train: one line per iteration, one RESULT line.

The examples build an RLlib ``Algorithm`` from a config with quantum policies swapped in; this
prints, per iteration, env steps, the agent steps each module trained on and each agent's mean
return, then ``RESULT <title>: ...`` (the line the CI tests of ``examples/`` read).

Example::

    algo = quantum_config.build_algo()
    train_and_report(algo, ["agent_0", "agent_1"], iterations=5, title="simple spread")
"""

from __future__ import annotations

import time
from typing import Any, Dict, Sequence


def describe_modules(algo, module_ids: Sequence[str]) -> None:
    """One line per module: its class, observation shape and action space (local runner's copy)."""
    for mid in module_ids:
        module = algo.get_module(mid)  # read it, never write it
        print(f"{mid}: {type(module).__name__}, observations {module.observation_space.shape}, actions {module.action_space}")


def train_and_report(algo, module_ids: Sequence[str], iterations: int, title: str) -> Dict[str, Any]:
    """Trains ``iterations`` iterations, printing progress; returns the last result."""
    start = time.perf_counter()
    result: Dict[str, Any] = {}
    for i in range(1, iterations + 1):
        result = algo.train()
        runners, learners = result["env_runners"], result["learners"]
        trained = ", ".join(f"{m} {int(learners[m]['num_module_steps_trained'])}" for m in module_ids if m in learners)
        returns = ", ".join(f"{a} {r:.2f}" for a, r in sorted((runners.get("agent_episode_returns_mean") or {}).items()))
        print(f"iteration {i}: env steps {int(runners['num_env_steps_sampled_lifetime'])} | "
              f"agent steps trained per module: {trained} | mean return per agent: {returns or 'no episode finished yet'}")
    steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"]) if result else 0
    print(f"RESULT {title}: {iterations} iterations, {steps} env steps, {len(module_ids)} quantum policies, "
          f"{time.perf_counter() - start:.1f} s")
    return result
