"""End-to-end training throughput (env steps per second of wall time, sampling plus learning) of the
features configs, before and after the speed settings, side by side in one process.

Each variant builds the algorithm from ``configs/<config>.yaml`` with its overrides, runs one
warm-up iteration, then trains for at least ``seconds`` of wall time and reports sampled env steps
per second over that time; every timed iteration must have trained every module. Ends with each
variant's ratio to ``before`` (the settings the configs shipped with until issue 7):
1 remote env runner x 4 envs, 1000-step batches, minibatch 250, 4 epochs, Adam for every parameter,
no mirrored policy (the quantum config's natural-gradient steps and its ``mirror`` came later; for
it, ``shipped, but Adam for the actor`` and ``shipped, but no mirror`` show what each costs).

    python benchmarks/throughput.py [--config quantum_independent_pong_features] [--seconds 30]
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import yaml
from common import parse_args, start_ray

ROOT = Path(__file__).resolve().parents[1]
# The settings the configs shipped with when issue 7 opened (and Adam for every parameter: see variants()).
BEFORE = {
    "env_runners.num_env_runners": 1,
    "env_runners.num_envs_per_env_runner": 4,
    "ppo.train_batch_size_per_learner": 1000,
    "ppo.minibatch_size": 250,
    "ppo.num_epochs": 4,
}


@dataclasses.dataclass
class Args:
    config: str = "quantum_independent_pong_features"
    seconds: float = 30.0  # timed wall time per variant (after one warm-up iteration)


def variants(config_path: Path) -> dict:
    """Name -> overrides of the config; ``shipped`` is the config file as it is. For a quantum config
    whose actor takes natural-gradient steps or whose policy is mirrored (``model_config.mirror``),
    ``before`` has neither, as every config when issue 7 opened, and one more variant per option
    shows what it costs."""
    model_config = yaml.safe_load(config_path.read_text()).get("model_config") or {}
    later = {}  # options added after issue 7 opened -> their override back to the old behaviour
    if "natural_gradient" in model_config:
        later["Adam for the actor"] = {"model_config.natural_gradient": None}
    if "mirror" in model_config:
        later["no mirror"] = {"model_config.mirror": None}
    undo = {k: v for overrides in later.values() for k, v in overrides.items()}
    out = {
        "before": {**BEFORE, **undo},
        "2 runners x 16 envs, 1000-step batches": {
            **BEFORE, **undo, "env_runners.num_env_runners": 2, "env_runners.num_envs_per_env_runner": 16,
        },
        "1 local runner x 32 envs, shipped batches": {
            "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 32,
        },
        "shipped, but minibatch 1000": {"ppo.minibatch_size": 1000},
    }
    for name, overrides in later.items():
        out[f"shipped, but {name}"] = overrides
    out["shipped"] = {}
    return out


def measure(config_path: Path, overrides: dict, seconds: float) -> dict:
    from rllib_quantum.config import load_experiment

    exp = load_experiment(config_path, overrides)
    algo = exp.algo_config.build_algo()
    try:
        algo.train()  # warm-up: actors start, first torch calls
        steps, iterations, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            result = algo.train()
            trained = [result["learners"][m]["num_module_steps_trained"] for m in exp.plan.module_ids]
            if min(trained) <= 0:
                raise RuntimeError(f"an iteration trained nothing ({trained}): sampling timed out?")
            steps += result["env_runners"]["num_env_steps_sampled"]
            iterations += 1
        wall = time.perf_counter() - start
    finally:
        algo.stop()
    return {"steps_per_s": steps / wall, "s_per_iter": wall / iterations, "steps_per_iter": steps / iterations}


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    ray = start_ray()
    config_path = ROOT / "configs" / f"{args.config}.yaml"
    print(f"machine: {os.cpu_count()} CPUs; config {config_path.name}; {args.seconds:.0f} s timed per variant\n")
    rows = {}
    for name, overrides in variants(config_path).items():
        rows[name] = measure(config_path, overrides, args.seconds)
        r = rows[name]
        print(f"{name:42s} {r['steps_per_s']:7.0f} env steps/s  ({r['s_per_iter']:.2f} s per {r['steps_per_iter']:.0f}-step iteration)", flush=True)
    base = rows["before"]["steps_per_s"]
    print("\n| settings | env steps / s | s / iteration | steps / iteration | ratio to before |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['steps_per_s']:.0f} | {r['s_per_iter']:.2f} | {r['steps_per_iter']:.0f} | {r['steps_per_s'] / base:.2f} |")
    print(f"\nratio shipped / before: {rows['shipped']['steps_per_s'] / base:.2f}  (goal >= 3)")
    ray.shutdown()


if __name__ == "__main__":
    main()
