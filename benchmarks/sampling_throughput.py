"""Env steps per second: one env runner with quantum policies vs the bare environment.

Side by side in one process on cooperative pong features (2 paddles):

- ``bare env``           RLlib's MultiAgentEnv stepped with random actions, no policy at all;
- ``runner: classical``  RLlib's local env runner sampling with RLlib's 64x64 MLP modules;
- ``runner: quantum``    the same runner with the independent quantum policies (fast path);
- ``runner: quantum-pennylane``  the same with the PennyLane QNode path forced.

Runners use the settings of the shipped configs (``num_envs_per_env_runner`` below). Ends with the
ratios runner / bare env.

    python benchmarks/sampling_throughput.py [--steps 4000] [--num-envs-per-env-runner 4] [--profile]
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from common import parse_args, start_ray

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    steps: int = 4000  # env steps timed per variant (after a warm-up of the same size)
    num_envs_per_env_runner: int = 4
    pennylane_steps: int = 500  # the PennyLane-forced runner is slow: time fewer steps
    skip_pennylane: bool = False
    pixel_steps: int = 300  # the bare pixels view (rendering) is measured too, for scale
    profile: bool = False  # also cProfile one more quantum-runner sample and print where the time goes


def bare_env_steps_per_s(steps: int, view: str = "features") -> float:
    from rllib_quantum.envs import make_cooperative_pong

    env = make_cooperative_pong({"obs": view})
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start, done = time.perf_counter(), 0
    while done < steps:
        _, _, terms, truncs, _ = env.step({a: int(rng.integers(3)) for a in env.agents})
        done += 1
        if terms["__all__"] or truncs["__all__"]:
            env.reset()
    return steps / (time.perf_counter() - start)


def runner_steps_per_s(config: str, overrides: dict, steps: int, profile: bool = False) -> float:
    from rllib_quantum.config import load_experiment

    exp = load_experiment(ROOT / "configs" / config, {"env_runners.num_env_runners": 0, **overrides})
    algo = exp.algo_config.build_algo()
    try:
        runner = algo.env_runner  # the local runner: sampling measured without actor round trips
        runner.sample(num_timesteps=steps, random_actions=False)  # warm-up
        start = time.perf_counter()
        episodes = runner.sample(num_timesteps=steps, random_actions=False)
        elapsed = time.perf_counter() - start
        sampled = sum(e.env_steps() for e in episodes)
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(runner.sample, num_timesteps=steps, random_actions=False)
            print(f"\ncProfile of one more {config} runner.sample({steps}), by cumulative time:")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    finally:
        algo.stop()
    return sampled / elapsed


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    import torch

    ray = start_ray()
    torch.set_num_threads(1)  # like an env runner actor (Ray sets OMP_NUM_THREADS=1 there)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, 1 torch thread; settings {dataclasses.asdict(args)}\n")

    vec = {"env_runners.num_envs_per_env_runner": args.num_envs_per_env_runner}
    rows = {"bare env": bare_env_steps_per_s(args.steps)}
    pixels = bare_env_steps_per_s(args.pixel_steps, "pixels")
    rows["runner: classical"] = runner_steps_per_s("classical_independent_pong_features.yaml", vec, args.steps)
    rows["runner: quantum"] = runner_steps_per_s("quantum_independent_pong_features.yaml", vec, args.steps, args.profile)
    if not args.skip_pennylane:
        rows["runner: quantum-pennylane"] = runner_steps_per_s(
            "quantum_independent_pong_features.yaml", {**vec, "model_config.circuit.execution": "pennylane"}, args.pennylane_steps
        )

    print("| variant | env steps / s | ratio to bare env |")
    print("| --- | --- | --- |")
    for name, sps in rows.items():
        print(f"| {name} | {sps:,.0f} | {sps / rows['bare env']:.4f} |")
    q = rows["runner: quantum"]
    print(f"\nfor scale: the bare pixels view (rendered 42x42x4 frames) steps {pixels:,.0f} env steps / s")
    print(f"ratio quantum runner / classical runner: {q / rows['runner: classical']:.2f}")
    if "runner: quantum-pennylane" in rows:
        print(f"ratio quantum (fast) / quantum-pennylane runner: {q / rows['runner: quantum-pennylane']:.1f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
