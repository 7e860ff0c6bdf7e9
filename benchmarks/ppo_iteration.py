"""PPO iteration time on cooperative pong features, 2 independent agents: quantum vs classical.

Side by side in one process, same env, strategy, batch sizes and env-runner settings:

- ``quantum``            configs/quantum_independent_pong_features.yaml (fast execution path) with
                         Adam for every parameter, as the classical config (``natural_gradient: null``):
                         what the module and learner cost, optimizer for optimizer
- ``quantum-natural-gradient``  the config's natural-gradient steps for the actor (a Fisher
                         matrix per update, a solve per minibatch step)

The quantum variants drop the config's ``mirror`` (a policy averaged over each state and its mirror
image runs its circuit on twice the rows): every module here evaluates once per state, so the
ratio compares module and learner cost per state; ``benchmarks/throughput.py``'s ``shipped, but no
mirror`` shows what the mirror costs the shipped config.
- ``quantum-pennylane``  ``quantum`` with ``model_config.circuit.execution: pennylane`` forced
- ``classical``          configs/classical_independent_pong_features.yaml (RLlib's 64x64 MLPs)

Each variant: build the algorithm, one warm-up iteration, then ``iterations`` timed iterations;
every timed iteration must have trained both modules (a sampling time-out would train nothing and
is reported as a failure, not as a fast iteration). Ends with the ratios.

With ``--rounds R`` (R > 1) every variant's algorithm is built up front and the variants take turns,
``iterations`` timed iterations each per round, so that a slow spell of the machine hits all of them:
one ratio per round, then their median and range (one pass's ratio moves by +-5-10 % run to run,
mostly with the sampling time).

    python benchmarks/ppo_iteration.py [--iterations 3] [--batch 1000] [--skip-pennylane] [--rounds 1]
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path

from common import Stopwatch, parse_args, start_ray

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    iterations: int = 3  # timed iterations per variant (after one warm-up)
    batch: int = 1000  # train_batch_size_per_learner (env steps per iteration)
    minibatch: int = 250
    epochs: int = 4
    num_env_runners: int = 1
    num_envs_per_env_runner: int = 4
    skip_pennylane: bool = False  # the PennyLane-forced variant is slow (tens of seconds per iteration)
    n_layers: int = 0  # 0: the config's circuit depth; else override it (the learner's cost grows with it)
    rounds: int = 1  # > 1: all variants built at once, taking turns (see the docstring)


def variants(args: Args) -> dict:
    common = {
        "ppo.train_batch_size_per_learner": args.batch,
        "ppo.minibatch_size": args.minibatch,
        "ppo.num_epochs": args.epochs,
        "env_runners.num_env_runners": args.num_env_runners,
        "env_runners.num_envs_per_env_runner": args.num_envs_per_env_runner,
    }
    quantum = ROOT / "configs" / "quantum_independent_pong_features.yaml"
    depth = {"model_config.circuit.n_layers": args.n_layers} if args.n_layers else {}
    adam = {"model_config.natural_gradient": None}
    one_pass = {"model_config.mirror": None}  # one circuit pass per state, as the MLP (see the docstring)
    out = {
        "quantum": (quantum, {**common, **depth, **adam, **one_pass}),
        "quantum-natural-gradient": (quantum, {**common, **depth, **one_pass}),
        "classical": (ROOT / "configs" / "classical_independent_pong_features.yaml", common),
    }
    if not args.skip_pennylane:
        out["quantum-pennylane"] = (quantum, {**common, **depth, **adam, **one_pass, "model_config.circuit.execution": "pennylane"})
    return out


def build(config_path, overrides):
    """The experiment and its algorithm, warmed up (actor start, caches, first torch calls), with
    its learner update wrapped in a stopwatch."""
    from rllib_quantum.config import load_experiment

    exp = load_experiment(config_path, overrides)
    algo = exp.algo_config.build_algo()
    # Time the learner update by wrapping it (RLlib's result["timers"] are moving averages seeded by
    # the slow warm-up iteration: they barely move over a few iterations); the rest is sampling.
    watch = Stopwatch()
    watch.wrap(algo.learner_group, "update", "learner")
    try:
        algo.train()
    except BaseException:
        algo.stop()
        raise
    return exp, algo, watch


def time_iterations(exp, algo, watch, iterations: int) -> dict:
    """Mean seconds per iteration, of which learner update and the rest, over ``iterations``."""
    times, sample_times, learner_times = [], [], []
    for _ in range(iterations):
        watch.reset()
        start = time.perf_counter()
        result = algo.train()
        times.append(time.perf_counter() - start)
        trained = [result["learners"][m]["num_module_steps_trained"] for m in exp.plan.module_ids]
        if min(trained) <= 0:
            raise RuntimeError(f"an iteration trained nothing ({trained}): sampling timed out?")
        learner = watch.reset()[0].get("learner", 0.0)
        if learner <= 0:
            raise RuntimeError("the learner update was not timed: RLlib's training step changed?")
        sample_times.append(times[-1] - learner)  # sampling (and weight sync): the rest
        learner_times.append(learner)
    return {"iter_s": statistics.mean(times), "sample_s": statistics.mean(sample_times),
            "learner_s": statistics.mean(learner_times)}


def trainable_params(exp) -> int:
    module = exp.build_modules()[exp.plan.module_ids[0]]
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def time_variant(config_path, overrides, iterations: int) -> dict:
    exp, algo, watch = build(config_path, overrides)
    try:
        return {**time_iterations(exp, algo, watch, iterations), "params": trainable_params(exp)}
    finally:
        algo.stop()


def time_in_turns(variants_: dict, iterations: int, rounds: int) -> list:
    """``rounds`` dicts ``{variant: time_iterations(...)}``, the variants taking turns (the order
    reversed every other round)."""
    built = {}
    try:
        for name, (path, overrides) in variants_.items():
            built[name] = build(path, overrides)
        out = []
        for r in range(rounds):
            names = list(built) if r % 2 == 0 else list(reversed(built))
            out.append({name: time_iterations(*built[name], iterations) for name in names})
            print(f"round {r + 1}: " + "  ".join(f"{n} {t['iter_s']:.2f} s (learner {t['learner_s']:.3f})"
                                                for n, t in out[-1].items()), flush=True)
        return out
    finally:
        for _, algo, _ in built.values():
            algo.stop()


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    import torch

    ray = start_ray()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads in the driver)")
    print(f"settings: {dataclasses.asdict(args)}\n")

    if args.rounds > 1:
        rounds = time_in_turns(variants(args), args.iterations, args.rounds)
        for name in ("quantum", "quantum-natural-gradient"):
            for key, label in (("iter_s", "iteration"), ("learner_s", "learner update")):
                ratios = [r[name][key] / r["classical"][key] for r in rounds]
                print(f"ratio {name} / classical {label} time, {len(ratios)} rounds: median {statistics.median(ratios):.2f} "
                      f"(range {min(ratios):.2f}-{max(ratios):.2f}; per round {', '.join(f'{x:.2f}' for x in ratios)})")
        ray.shutdown()
        return

    rows = {}
    for name, (path, overrides) in variants(args).items():
        rows[name] = time_variant(path, overrides, args.iterations)
        r = rows[name]
        print(f"{name:26s} {r['iter_s']:8.2f} s/iter   sampling {r['sample_s']:7.2f} s   learner {r['learner_s']:7.3f} s"
              f"   params/module {r['params']}", flush=True)

    print("\n| variant | s / iteration | of which learner update (s) | of which the rest: sampling, weight sync (s) | trainable params per module |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['iter_s']:.2f} | {r['learner_s']:.3f} | {r['sample_s']:.2f} | {r['params']} |")
    q, c = rows["quantum"], rows["classical"]
    print(f"\nratio quantum / classical iteration time: {q['iter_s'] / c['iter_s']:.2f}  (goal <= 1.0)")
    print(f"ratio quantum / classical learner update time: {q['learner_s'] / c['learner_s']:.2f}")
    ng = rows["quantum-natural-gradient"]
    print(f"ratio quantum-natural-gradient (as shipped) / classical iteration time: {ng['iter_s'] / c['iter_s']:.2f}, "
          f"learner update time: {ng['learner_s'] / c['learner_s']:.2f}")
    if "quantum-pennylane" in rows:
        print(f"ratio quantum-pennylane / quantum (what the fast path buys): {rows['quantum-pennylane']['iter_s'] / q['iter_s']:.1f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
