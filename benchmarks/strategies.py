"""Short runs of each strategy on cooperative pong: final mean return per agent and wall time.

Same env-step budget for every strategy (``--iterations`` x ``--steps`` env steps). Returns are
per paddle: the joint agent's summed return is divided by the number of paddles. Short runs do
not show learning (see DESIGN.md); this measures cost and checks that every strategy runs.

Usage:
    python benchmarks/strategies.py                      # quantum, features, 5 x 1000 steps
    python benchmarks/strategies.py --module classical --iterations 3
    python benchmarks/strategies.py --view pixels --iterations 1 --steps 0   # the YAMLs' own batch
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

STRATEGIES = ("independent", "shared", "joint", "averaged")


def run(config_path: str, iterations: int, steps: int, num_cpus: int) -> dict:
    """Trains ``config_path`` for ``iterations`` and returns the row of the table."""
    from rllib_quantum.config import load_experiment

    overrides = {"stop.training_iteration": iterations}
    if steps:
        overrides.update({"ppo.train_batch_size_per_learner": steps, "ppo.minibatch_size": max(1, steps // 4)})
    exp = load_experiment(config_path, overrides)
    t0 = time.perf_counter()
    algo = exp.algo_config.build_algo()
    build_s = time.perf_counter() - t0
    iter_s, result = [], {}
    for _ in range(iterations):
        t = time.perf_counter()
        result = algo.train()
        iter_s.append(time.perf_counter() - t)
    algo.stop()
    returns = result["env_runners"].get("agent_episode_returns_mean", {})
    n_paddles = 2
    per_agent = {a: (r / n_paddles if a == "joint" else r) for a, r in returns.items()}
    return {
        "config": os.path.basename(config_path),
        "env_steps": int(result["env_runners"].get("num_env_steps_sampled_lifetime", 0)),
        "return_per_agent": sum(per_agent.values()) / max(1, len(per_agent)),
        "build_s": build_s,
        "iter_s": sum(iter_s) / len(iter_s),
        "wall_s": build_s + sum(iter_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="quantum", choices=("quantum", "classical"))
    parser.add_argument("--view", default="features", choices=("features", "pixels"))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000, help="env steps per iteration (0: the YAML's)")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()

    import ray
    import ray.tune.trainable.trainable as trainable

    from rllib_quantum.envs import register_envs

    tmp = tempfile.mkdtemp(prefix="rq-bench-")
    trainable.DEFAULT_STORAGE_PATH = tmp  # no ~/ray_results
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, _temp_dir=tmp, log_to_driver=False)
    register_envs()
    rows = [run(f"configs/{args.module}_{s}_pong_{args.view}.yaml", args.iterations, args.steps, args.num_cpus)
            for s in args.strategies]
    ray.shutdown()

    base = rows[0]["wall_s"]
    print(f"\n{args.module} modules, {args.view} view, {args.iterations} iterations"
          f" x {args.steps or 'YAML'} env steps, {args.num_cpus} CPUs")
    print(f"{'config':40s} {'env steps':>9s} {'return/agent':>12s} {'build s':>8s} {'s/iter':>7s} {'wall s':>7s} {'wall ratio':>10s}")
    for r in rows:
        print(f"{r['config']:40s} {r['env_steps']:9d} {r['return_per_agent']:12.2f} {r['build_s']:8.1f} "
              f"{r['iter_s']:7.1f} {r['wall_s']:7.1f} {r['wall_s'] / base:10.2f}")


if __name__ == "__main__":
    main()
