"""Probes TK, TG and TH of docs/learning_log.md (eighteenth round): what a run's final policy plays.

Trains the quantum features config on one seed the way ``benchmarks/learning.py`` does (one
process, the local env runner sampling all 128 envs), then plays with the learner's final modules:

- ``--factors``: fresh episodes with the logits multiplied by each factor and sampled (``inf``:
  greedy), through ``rllib_quantum.evaluation`` (probe TK);
- ``--frozen-calls``: that many more sampling calls of one batch each on the training envs with the
  weights frozen, each call's episode mean as the training return reports it (probes TG, TH).

Not part of the package or its tests. The algorithm runs in this driver process, whose Python hash
seed is drawn per process unless ``PYTHONHASHSEED`` is set, so a run takes one of a seed's two
courses (docs/learning.md, step 14): TK and TG took NM's course of seed 0, TH the other.

    PYTHONPATH=. python docs/probes/final_policy_probes.py --seed 0 --factors 1 1.5 2 3 5 inf --episodes 30
    PYTHONPATH=. python docs/probes/final_policy_probes.py --seed 0 --factors 1 --episodes 100 --frozen-calls 25
    PYTHONPATH=. python docs/probes/final_policy_probes.py --seed 0 --extra-iterations 12 --frozen-calls 12

The probes ran as one-off scripts on commit 4b54f3e (the config before the inverse-temperature
ramp), kept here as this script afterwards: TK is the first command; TG's 100 fresh episodes used
env seeds 500000-500099 (this script: ``eval_seeds``, as every evaluation) and also played the env
runner's own modules (89.3 against the learner's 90.0); TH is the third. On later commits add
``--set model_config.inverse_temperature=1.0`` for that config.
"""

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--factors", type=float, nargs="*", default=[])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--extra-iterations", type=int, default=0, help="train this many iterations past the budget")
    parser.add_argument("--frozen-calls", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="key=value overrides, as rllib-quantum train --set")
    args = parser.parse_args()

    import ray

    from rllib_quantum.config import apply_overrides, build_experiment, parse_overrides
    from rllib_quantum.envs import ENV_CREATORS, register_envs
    from rllib_quantum.evaluation import eval_seeds, evaluate_modules, learner_modules

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    register_envs()
    base = yaml.safe_load((ROOT / "configs" / "quantum_independent_pong_features.yaml").read_text())
    overrides = {"seed": args.seed, "env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": 128,
                 **parse_overrides(args.set)}
    exp = build_experiment(base, overrides)
    config = apply_overrides(base, overrides)
    iterations = math.ceil(config["stop"]["env_runners/num_env_steps_sampled_lifetime"]
                           / config["ppo"]["train_batch_size_per_learner"])
    algo = exp.algo_config.build_algo()
    returns = []
    for it in range(1, iterations + args.extra_iterations + 1):
        result = algo.train()
        returns.append(result["env_runners"].get("agent_episode_returns_mean", {}).get("paddle_0", float("nan")))
        if it > iterations - 13:
            print(f"iteration {it}: training return {returns[-1]:.1f} ({result['env_runners'].get('num_episodes')} episodes)")
    print(f"training return, last 10 iterations of the budget ({iterations}): {np.nanmean(returns[iterations - 10:iterations]):.1f}")
    if args.extra_iterations:
        print(f"the {args.extra_iterations} iterations after: {np.nanmean(returns[iterations:]):.1f}")

    modules = learner_modules(exp, algo)
    seeds = eval_seeds(args.episodes, args.seed)
    for factor in args.factors:
        if math.isinf(factor):
            print(f"greedy: {evaluate_modules(exp, modules, episodes=args.episodes, greedy=True, seeds=seeds).summary()}")
            continue
        env = ENV_CREATORS[exp.plan.env](exp.spec["env_config"])
        generator, totals = torch.Generator().manual_seed(123), []
        for env_seed in seeds:
            obs, _ = env.reset(seed=env_seed)
            total, done = 0.0, False
            while not done:
                actions = {}
                for agent, o in obs.items():
                    with torch.no_grad():
                        logits = modules[agent].forward_inference({"obs": torch.as_tensor(o[None], dtype=torch.float32)})
                    probs = torch.softmax(logits["action_dist_inputs"][0] * factor, -1)
                    actions[agent] = int(torch.multinomial(probs, 1, generator=generator))
                obs, rewards, terminateds, truncateds, _ = env.step(actions)
                total += rewards.get("paddle_0", 0.0)
                done = terminateds.get("__all__") or truncateds.get("__all__")
            totals.append(total)
        print(f"logits x {factor}, sampled, {args.episodes} fresh episodes: paddle_0 {statistics.fmean(totals):.1f}")

    if args.frozen_calls:
        runner = algo.env_runner
        runner.module.set_state(modules.get_state())
        calls = []
        for i in range(args.frozen_calls):
            runner.sample(num_timesteps=config["ppo"]["train_batch_size_per_learner"])
            stats = runner.get_metrics().get("agent_episode_returns_mean", {}).get("paddle_0")
            calls.append(float(stats.peek()) if stats is not None else float("nan"))  # nan: no episode ended
            print(f"frozen call {i}: {calls[-1]:.1f}")
        print(f"frozen weights, training envs, mean of {len(calls)} calls: {np.nanmean(calls):.1f}")
    algo.stop()


if __name__ == "__main__":
    main()
