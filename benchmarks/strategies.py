"""Each distribution strategy on cooperative pong with the same env-step budget: return and time.

One process, strategies run one after another from their YAML configs
(``configs/{module}_{strategy}_pong_{view}.yaml``) with the same batch size and iterations.
Returns are per paddle (the joint agent's summed return is halved). Reported: the mean return of
the last ``window`` iterations (RLlib's own per-iteration value is already a running mean over
recent episodes), the best iteration, seconds per iteration and wall time, then ratios against
the first strategy.

    python benchmarks/strategies.py                              # quantum, features, 100 x 1000 steps
    python benchmarks/strategies.py --module classical
    python benchmarks/strategies.py --view pixels --iterations 2 --steps 500
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

from common import parse_args, start_ray

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    module: str = "quantum"  # quantum | classical
    view: str = "features"  # features | pixels
    strategies: tuple = ("independent", "shared", "joint", "averaged")
    iterations: int = 100  # same env-step budget for every strategy: iterations x steps
    steps: int = 1000  # env steps per iteration (train_batch_size_per_learner)
    window: int = 10  # final return = mean over the last `window` iterations
    seed: int = 0


def per_paddle_return(result: dict) -> float:
    returns = result["env_runners"].get("agent_episode_returns_mean") or {}
    values = [r / 2 if agent == "joint" else r for agent, r in returns.items()]
    return statistics.mean(values) if values else float("nan")


def run(strategy: str, args: Args) -> dict:
    from rllib_quantum.config import load_experiment

    path = ROOT / "configs" / f"{args.module}_{strategy}_pong_{args.view}.yaml"
    exp = load_experiment(path, {
        "ppo.train_batch_size_per_learner": args.steps,
        "ppo.minibatch_size": max(1, args.steps // 4),
        "seed": args.seed,
    })
    start = time.perf_counter()
    algo = exp.algo_config.build_algo()
    curve, result = [], {}
    for _ in range(args.iterations):
        result = algo.train()
        curve.append(per_paddle_return(result))
    wall = time.perf_counter() - start
    algo.stop()
    seen = [r for r in curve if r == r]  # iterations with at least one finished episode
    return {
        "strategy": strategy,
        "env_steps": int(result["env_runners"]["num_env_steps_sampled_lifetime"]),
        "final": statistics.mean(seen[-args.window:]) if seen else float("nan"),
        "best": max(seen) if seen else float("nan"),
        "iter_s": wall / args.iterations,
        "wall_s": wall,
    }


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    ray = start_ray()
    print(f"settings: {dataclasses.asdict(args)}")
    rows = []
    for strategy in args.strategies:
        rows.append(run(strategy, args))
        r = rows[-1]
        print(f"{strategy:12s} final {r['final']:7.2f}  best {r['best']:7.2f}  {r['iter_s']:.2f} s/iter  wall {r['wall_s']:.0f} s", flush=True)
    ray.shutdown()

    base = rows[0]
    print(f"\n{args.module} modules, {args.view} view, {args.iterations} iterations x {args.steps} env steps per strategy")
    print(f"| strategy | env steps | return per paddle, last {args.window} iters | best iteration | s / iter | wall s | wall vs {base['strategy']} |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['strategy']} | {r['env_steps']} | {r['final']:.2f} | {r['best']:.2f} | {r['iter_s']:.2f} | {r['wall_s']:.0f} | {r['wall_s'] / base['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
