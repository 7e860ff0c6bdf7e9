"""Learning on cooperative pong features: quantum vs classical independent policies, several seeds.

Each (config, seed) is one Tune trial of ``iterations`` PPO iterations with the local env runner
(``num_env_runners: 0``, one CPU per trial, so trials run side by side on the machine's cores).
Prints, per config and seed, the mean per-paddle return over windows of the run and the best
iteration, then the means over seeds; writes one learning-curve PNG per config.

    python benchmarks/learning.py [--iterations 200] [--seeds 0 1 2]
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import yaml
from common import parse_args, start_ray

ROOT = Path(__file__).resolve().parents[1]
RETURN = "env_runners/episode_return_mean"  # sum over both paddles (equal rewards): halved below


@dataclasses.dataclass
class Args:
    configs: tuple = ("quantum_independent_pong_features", "classical_independent_pong_features")
    seeds: tuple = (0, 1, 2)
    iterations: int = 200  # x 1000 env steps (the configs' batch)
    windows: int = 4  # report the mean return over this many equal windows of the run
    storage: str = "results/learning"


def run_config(name: str, args: Args):
    from rllib_quantum.search import Search

    base = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    search = Search(
        name=f"learning-{name}", base=base, overrides={"env_runners.num_env_runners": 0},
        search_space={"seed": {"grid": list(args.seeds)}}, metric=RETURN, mode="max",
        num_samples=1, max_iterations=args.iterations, scheduler={"type": "fifo"},
    )
    grid = search.tuner(str(ROOT / args.storage), verbose=0).fit()
    if grid.errors:
        raise RuntimeError(grid.errors[0])
    return {r.config["seed"]: r for r in grid}


def windows(values, n):
    size = math.ceil(len(values) / n)
    out = []
    for i in range(n):
        seen = [v for v in values[i * size:(i + 1) * size] if v == v]
        out.append(statistics.mean(seen) if seen else float("nan"))
    return out


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    start_ray()
    from rllib_quantum.plotting import plot_learning_curves

    step = math.ceil(args.iterations / args.windows)
    spans = [f"it {i * step + 1}-{min((i + 1) * step, args.iterations)}" for i in range(args.windows)]
    print(f"| config | seed | {' | '.join(spans)} | best iteration |")
    print("|---" * (args.windows + 3) + "|")
    means = {}
    for name in args.configs:
        results = run_config(name, args)
        rows = []
        for seed, result in sorted(results.items()):
            per_paddle = (result.metrics_dataframe[RETURN] / 2).tolist()
            row = windows(per_paddle, args.windows) + [max(v for v in per_paddle if v == v)]
            rows.append(row)
            print(f"| {name} | {seed} | " + " | ".join(f"{v:.1f}" for v in row) + " |", flush=True)
        means[name] = [statistics.mean(col) for col in zip(*rows)]
        plot_learning_curves(
            {f"seed {s}": r.metrics_dataframe for s, r in sorted(results.items())},
            ROOT / args.storage / f"{name}.png", title=f"{name}: per-paddle return",
        )
    print()
    for name, row in means.items():
        print(f"| {name} | mean of {len(args.seeds)} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    print(f"\nlearning curves: {ROOT / args.storage}/<config>.png; random play ~ -3.7, scripted tracker 100")


if __name__ == "__main__":
    main()
