"""How sharp must a cooperative-pong policy be? Scripted policies on the features view, with noise.

Plays ``episodes`` fresh episodes (the env seeds ``rllib-quantum evaluate`` uses) with scripted
policies on the 5 features, both paddles alike, and prints the mean return per paddle:

- ``tracker``            move toward the ball's y (``scripted_tracker_action``; the ceiling, 100)
- ``intercept``          the same rule aimed at where the ball will cross the paddle's x, bounces
                         included (``policy_anatomy.intercept_action``)
- ``centre, then track`` hold the screen's centre until the ball is at most ``K`` steps from the
                         paddle's x, then track: how short the window is where actions decide a miss

Then the same policies with a uniformly random action instead of the scripted one with probability
``eps``, applied everywhere, only in the deciding window (the ball reaches the paddle within
``window`` steps), or only outside it: what the sampling noise of a stochastic policy costs, and
where. A learned policy's training return is its sampled play, so this is the bar for its entropy.

    python benchmarks/reference_policies.py [--episodes 20] [--eps 0.05 0.1 0.2 0.3] [--window 10]
"""

from __future__ import annotations

import dataclasses

import numpy as np
from common import parse_args
from policy_anatomy import intercept_action, steps_to_paddle

from rllib_quantum.envs import scripted_tracker_action

WHERES = ("everywhere", "deciding", "elsewhere")  # where the noise lands (the deciding window: see play)


@dataclasses.dataclass
class Args:
    episodes: int = 20
    eps: tuple = (0.05, 0.1, 0.2, 0.3)  # probabilities of a random action instead of the scripted one
    window: int = 10  # the deciding window for the noise split: the ball reaches the paddle within this many steps
    centre_after: tuple = (5, 10, 20)  # K of "centre, then track": track only within K steps of arrival
    seed: int = 0  # the experiment seed whose evaluation env seeds are used (as rllib-quantum evaluate)


def tracker(obs, agent):
    return scripted_tracker_action(obs)


def centre_then_track(k: int):
    def policy(obs, agent):
        if steps_to_paddle(obs, agent) <= k:
            return tracker(obs, agent)
        centre = np.array(obs, dtype=np.float64)
        centre[1] = 0.0  # the tracker's rule aimed at the screen's centre
        return tracker(centre, agent)

    return policy


def play(policy, seeds, eps: float = 0.0, where: str = "everywhere", window: int = 10) -> tuple:
    """Mean return per paddle, its 95 % CI (as ``rllib-quantum evaluate`` reports it) and the mean
    episode length over ``seeds``; with probability ``eps`` a random action replaces the policy's
    where ``where`` says."""
    from rllib_quantum.envs import CooperativePongFeatures
    from rllib_quantum.evaluation import EvaluationReport

    if where not in WHERES:
        raise ValueError(f"where must be one of {WHERES}, got {where!r}")
    env = CooperativePongFeatures()
    rng = np.random.default_rng(12345)
    returns, lengths = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, t = 0.0, 0
        while env.agents:
            actions = {}
            for agent, o in obs.items():
                deciding = steps_to_paddle(o, agent) <= window
                noisy = where == "everywhere" or (where == "deciding") == deciding
                actions[agent] = int(rng.integers(3)) if noisy and rng.random() < eps else policy(o, agent)
            obs, rewards, *_ = env.step(actions)
            total += rewards["paddle_0"]  # the paddles' rewards are equal
            t += 1
        returns.append(total)
        lengths.append(t)
    env.close()
    report = EvaluationReport({"paddle_0": returns}, lengths, list(seeds), greedy=False)
    return report.mean("paddle_0"), report.ci95("paddle_0"), float(np.mean(lengths))


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    from rllib_quantum.evaluation import eval_seeds

    seeds = eval_seeds(args.episodes, args.seed)
    policies = {"tracker": tracker, "intercept": intercept_action}
    print(f"{args.episodes} episodes per cell, env seeds {seeds[0]}..{seeds[-1]}; mean return per paddle +- 95% CI "
          f"(mean episode length of 900)\n")
    print("| policy | return |")
    print("| --- | --- |")
    for name, policy in policies.items():
        mean, ci, length = play(policy, seeds)
        print(f"| {name} | {mean:.1f} +- {ci:.1f} ({length:.0f}) |", flush=True)
    for k in args.centre_after:
        mean, ci, length = play(centre_then_track(k), seeds)
        print(f"| centre, then track within {k} steps of arrival | {mean:.1f} +- {ci:.1f} ({length:.0f}) |", flush=True)

    print(f"\nwith a random action at probability eps: everywhere, only in the deciding window (the ball reaches the "
          f"paddle within {args.window} steps), only outside it\n")
    print("| policy | eps | " + " | ".join(WHERES) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in WHERES) + " |")
    for name, policy in policies.items():
        for eps in args.eps:
            cells = [play(policy, seeds, eps, where, args.window) for where in WHERES]
            print(f"| {name} | {eps:g} | " + " | ".join(f"{m:.1f} +- {c:.1f} ({n:.0f})" for m, c, n in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
