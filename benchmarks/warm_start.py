"""Does PPO keep a ceiling-level quantum policy it is handed, or pull it back to where it stalls?

PPO trains the shipped features config to about 80 per paddle (training return) in 500k env
steps; behaviour cloning shows the same circuit can play 100 (``circuit_capacity.py``). This run
separates the two explanations left: PPO cannot *find* such a policy (then, started there, it
keeps it), or PPO's own dynamics do not *hold* one (then, started there, it falls back).

Per seed:

1. clone the scripted ball tracker into each paddle's actor (circuit, scalings, read-out head;
   ``circuit_capacity.clone_tracker``) and play it, sampled and greedy, on ``eval_episodes`` fresh
   episodes;
2. build the config's PPO algorithm (its settings, every env in one local runner as
   ``learning.py`` does; this process re-runs itself with ``PYTHONHASHSEED=0`` if it has none, so
   that a seed repeats), load the cloned actors into the learner's modules (critic and optimizer
   state as PPO would start them), sync the env runner, and check that it plays as the clone;
3. train the config's budget, printing the training return (per paddle, RLlib's per-iteration
   episode mean) as it goes, then the mean of the last 10 iterations and greedy evaluation, as
   ``learning.py`` reports a run from scratch.

``--steps`` (a shorter cloning: a less accurate, softer start) and ``--logit-scale`` (the same
clone with its logits scaled: the same action ranking, another sharpness) vary the start.

    python benchmarks/warm_start.py [--seeds 0 1] [--steps 1500] [--logit-scale 1.0] [--iterations 0] [--eval-episodes 20]
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import yaml
from circuit_capacity import clone_tracker
from common import parse_args, setup_torch, start_ray
from learning import budget_iterations, same_envs_in_one_process

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    config: str = "quantum_independent_pong_features"
    seeds: tuple = (0, 1)
    iterations: int = 0  # 0: the config's budget (stop on env steps) / its batch size
    eval_episodes: int = 20
    states: int = 20000  # behaviour cloning, as circuit_capacity.py
    steps: int = 1500
    batch: int = 256
    lr: float = 0.01
    logit_scale: float = 1.0  # multiply the clones' logits by this (read-out head weights and bias): same ranking, other sharpness
    report_every: int = 8  # iterations between progress lines


def training_return(result: dict, agent: str) -> float:
    value = result.get("env_runners", {}).get("agent_episode_returns_mean", {}).get(agent, math.nan)
    return float(value)


def nanmean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def paddles_mean(report) -> float:
    """An evaluation report's mean return per paddle, averaged over the paddles."""
    return nanmean([report.mean(agent) for agent in report.returns])


def scale_logits(modules: dict, factor: float) -> None:
    """Every module's logits times ``factor``: the linear read-out head's weights and bias scaled,
    so each state's action ranking stays and only the policy's sharpness changes."""
    import torch

    for mid, module in modules.items():
        head = module.actor_head
        if not isinstance(head, torch.nn.Linear):
            raise ValueError(f"--logit-scale needs the linear read-out (readout: linear); {mid} has {type(head).__name__}")
        with torch.no_grad():
            head.weight.mul_(factor)
            head.bias.mul_(factor)


def load_actors(algo, modules: dict) -> None:
    """The cloned modules' actor parameters (everything but the critic) into the learner's modules,
    then the weights to the env runner(s)."""
    learner = algo.learner_group._learner
    for mid, source in modules.items():
        target = learner.module[mid]
        state = target.state_dict()
        actor = {k: v for k, v in source.state_dict().items() if not k.startswith("critic")}
        if not set(actor) <= set(state):
            raise RuntimeError(f"{mid}: the algorithm's module has no parameters {sorted(set(actor) - set(state))}")
        state.update(actor)
        target.load_state_dict(state)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)


def run_seed(seed: int, args: Args, config: dict) -> dict:
    from rllib_quantum import evaluate_modules, load_experiment
    from rllib_quantum.evaluation import learner_modules

    path = ROOT / "configs" / f"{args.config}.yaml"
    cloned = clone_tracker(config["model_config"], args.states, args.steps, args.batch, args.lr, seed)
    if args.logit_scale != 1.0:
        scale_logits(cloned, args.logit_scale)
    experiment = load_experiment(path, {"seed": seed, **same_envs_in_one_process(config)})
    clone_sampled = evaluate_modules(experiment, cloned, episodes=args.eval_episodes, greedy=False)
    clone_greedy = evaluate_modules(experiment, cloned, episodes=args.eval_episodes, greedy=True)
    print(f"seed {seed}: cloned actors, sampled: {clone_sampled.summary()}")
    print(f"seed {seed}: cloned actors, greedy:  {clone_greedy.summary()}")

    algo = experiment.algo_config.build_algo()
    try:
        runner_modules = {mid: algo.env_runner.module[mid] for mid in cloned}
        before = evaluate_modules(experiment, runner_modules, episodes=args.eval_episodes, greedy=True)
        print(f"seed {seed}: env runner before loading, greedy: {before.summary()}")
        load_actors(algo, cloned)
        start = evaluate_modules(experiment, runner_modules, episodes=args.eval_episodes, greedy=True)
        print(f"seed {seed}: env runner after loading, greedy: {start.summary()}")
        iterations = args.iterations or budget_iterations(config)
        agents = sorted(cloned)
        history, began = [], time.perf_counter()
        for it in range(1, iterations + 1):
            result = algo.train()
            history.append([training_return(result, a) for a in agents])
            if it % args.report_every == 0 or it == iterations:
                recent = [nanmean([h[i] for h in history[-args.report_every:]]) for i in range(len(agents))]
                steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
                print(f"seed {seed}: iteration {it}, {steps} env steps, training return of the last "
                      f"{args.report_every} iterations: " + ", ".join(f"{a} {v:.1f}" for a, v in zip(agents, recent)))
        final = evaluate_modules(experiment, learner_modules(experiment, algo), episodes=args.eval_episodes)
        last10 = [nanmean([h[i] for h in history[-10:]]) for i in range(len(agents))]
        print(f"seed {seed}: after PPO ({time.perf_counter() - began:.0f} s): last 10 iterations "
              + ", ".join(f"{a} {v:.1f}" for a, v in zip(agents, last10)) + f" | greedy: {final.summary()}")
        return {
            "clone_sampled": paddles_mean(clone_sampled),
            "clone_greedy": paddles_mean(clone_greedy),
            "last10": nanmean(last10),
            "greedy": paddles_mean(final),
        }
    finally:
        algo.stop()


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") is None:
        # The algorithm (its learner and env runner) lives in this process: fix its string-hash
        # seed, or a seeded run takes one of two courses (rllib_quantum.reproducibility).
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    args = parse_args(Args, __doc__.split("\n")[0])
    print(setup_torch(threads=1, seed=0))
    config = yaml.safe_load((ROOT / "configs" / f"{args.config}.yaml").read_text())
    start_ray()
    rows = {seed: run_seed(seed, args, config) for seed in args.seeds}
    print("\n| seed | cloned, sampled | cloned, greedy | PPO from the clone: training return, last 10 iterations | greedy evaluation |")
    print("| --- | --- | --- | --- | --- |")
    for seed, r in rows.items():
        print(f"| {seed} | {r['clone_sampled']:.1f} | {r['clone_greedy']:.1f} | {r['last10']:.1f} | {r['greedy']:.1f} |")
    print("(per paddle, mean of the paddles; the shipped config from scratch, same seeds: docs/learning.md per-seed table)")


if __name__ == "__main__":
    main()
