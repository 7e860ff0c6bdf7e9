"""Where a trained cooperative-pong policy loses points: its actions, state by state, against the tracker.

Plays ``episodes`` fresh evaluation episodes (the env seeds ``rllib-quantum evaluate`` uses) with a
checkpoint's policies, once with sampled and once with greedy actions, and compares every step's
action distribution with the scripted ball tracker's action (move toward the ball's y; it scores
the ceiling, 100 per paddle, on the same 5 features). States are split by what the paddle faces:

- ``approaching, <= N steps``  the ball flies toward this paddle and reaches its x within N steps
                               (the paddle needs up to 23 steps to cross the screen): the states
                               that decide a miss
- ``approaching, later``       the ball flies toward this paddle, further away
- ``receding``                 the ball flies toward the other paddle (this paddle's actions only
                               set up its position for the return)

Per kind: share of steps, mean probability of the tracker's action, how often the most likely
action is the tracker's, mean entropy. Then the misses: which paddle, how far the ball's centre
was from the paddle's centre when it left, and the policy's mean probability of the tracker's
action over the miss's last ``window`` steps. Last, the tracking curves in the deciding states:
mean action probabilities per bin of (ball y - paddle y), and of (intercept y - paddle y), the
intercept being where the ball will cross the paddle's x (straight flight, mirrored at the walls):
a policy that aims at the intercept, not at the ball, agrees with the "intercept action" (the
tracker's rule applied to the intercept) instead of the tracker's. Then a least-squares fit of
log P(up)/P(down) on the five features, over every step: what the preference follows.

    python benchmarks/policy_anatomy.py --checkpoint PATH [--episodes 20] [--deciding-steps 25]
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
from common import parse_args

from rllib_quantum.envs.cooperative_pong import FEATURE_NAMES


@dataclasses.dataclass
class Args:
    checkpoint: str = ""  # an RLlib algorithm checkpoint of a cooperative pong features experiment
    episodes: int = 20
    deciding_steps: int = 25  # "approaching, <= N steps": the ball reaches the paddle's x within N steps
    window: int = 20  # steps before a miss to look at
    bins: int = 8  # tracking-curve bins of (ball y - paddle y) over [-0.8, 0.8]


# Game geometry (cooperative_pong_v6 defaults): 480 x 280 pixels, ball speed 9 pixels per step, a
# 10-pixel ball (its centre stays in [5, 275]). FACES: the ball centre's x when it meets a paddle:
# the left paddle's face is at x = 10; the right one is a "cake" of tiers whose middle one reaches
# furthest, to x = 420 (its outer tiers are at 435-465: off-centre arrivals meet them later).
WIDTH, HEIGHT, BALL_SPEED, FACES = 480.0, 280.0, 9.0, {"paddle_0": 15.0, "paddle_1": 415.0}
Y_LOW, Y_HIGH = 5.0, 275.0
SIDE = {"paddle_0": -1.0, "paddle_1": 1.0}  # the direction of vx that approaches the paddle


def _pixels_per_step(v: float) -> float:
    """The ball's rect moves in whole pixels: ``x += v`` on an int coordinate floors, so a speed of
    5.87 moves 5 pixels a step and -5.87 moves -6."""
    return math.floor(round(v * BALL_SPEED, 6))


def steps_to_paddle(obs: np.ndarray, agent: str) -> float:
    """Steps until the ball reaches ``agent``'s x (inf when it flies away)."""
    vx = _pixels_per_step(float(obs[2]))
    if vx * SIDE[agent] <= 0:
        return math.inf
    x = (float(obs[0]) + 1.0) / 2.0 * WIDTH
    return max(FACES[agent] - x, x - FACES[agent]) / abs(vx) if vx else math.inf


def to_screen_frame(obs: np.ndarray, agent: str, frame: str) -> np.ndarray:
    """``agent``'s observation in the screen frame that the geometry here assumes (a copy):
    ``env_config.frame: own_side`` gives paddle_1 its ball x and vx negated."""
    out = np.array(obs, dtype=np.float32, copy=True)
    if frame == "own_side" and agent == "paddle_1":
        out[[0, 2]] *= -1.0
    return out


def intercept_y(obs: np.ndarray, agent: str) -> float:
    """The ball's y (scaled as the features) when it reaches ``agent``'s x, bouncing off the top and
    bottom walls on the way; the ball's y now when it flies away."""
    n = steps_to_paddle(obs, agent)
    if not math.isfinite(n):
        return float(obs[1])
    y = (float(obs[1]) + 1.0) / 2.0 * HEIGHT + _pixels_per_step(float(obs[3])) * n
    span = Y_HIGH - Y_LOW
    y = (y - Y_LOW) % (2 * span)
    y = Y_LOW + (y if y <= span else 2 * span - y)  # mirrored at the walls
    return 2.0 * y / HEIGHT - 1.0


def intercept_action(obs: np.ndarray, agent: str, deadband: float = 0.05) -> int:
    """The tracker's rule aimed at the ball's intercept instead of the ball's y now."""
    from rllib_quantum.envs import scripted_tracker_action

    aimed = np.array(obs, dtype=np.float64)
    aimed[1] = intercept_y(obs, agent)
    return scripted_tracker_action(aimed, deadband)


def play(setup, modules, seeds, greedy: bool):
    """Every step's (agent, obs, action probs, chosen action) and each episode's end."""
    import torch
    from ray.rllib.core.columns import Columns

    from rllib_quantum.envs import ENV_CREATORS

    env = ENV_CREATORS[setup.env](setup.env_config)
    frame = setup.env_config.get("frame", "screen")  # the module sees its own frame; the tables the screen's
    steps, ends = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        history, done, t = [], False, 0
        while not done:
            actions = {}
            for agent, o in obs.items():
                module = modules[setup.policy_mapping_fn(agent, None)]
                with torch.no_grad():
                    logits = module.forward_inference({Columns.OBS: torch.as_tensor(o[None], dtype=torch.float32)})[
                        Columns.ACTION_DIST_INPUTS
                    ]
                probs = torch.softmax(logits, -1)[0].numpy()
                actions[agent] = int(probs.argmax()) if greedy else int(np.random.default_rng(seed * 10007 + t).choice(3, p=probs / probs.sum()))
                history.append((agent, to_screen_frame(o, agent, frame), probs, actions[agent], t))
            obs, rewards, terms, truncs, _ = env.step(actions)
            t += 1
            done = any(terms.values()) or any(truncs.values())
        missed = None
        if any(terms.values()):  # the ball left the screen: on the left, paddle_0 missed it
            ball_x = float(obs["paddle_0"][0])  # paddle_0's x is the screen's in either frame
            missed = "paddle_0" if ball_x < 0 else "paddle_1"
        steps.extend(history)
        ends.append((seed, t, missed, history))
    env.close()
    return steps, ends


def report(steps, ends, args: Args, mode: str, max_cycles: int) -> None:
    from rllib_quantum.envs import scripted_tracker_action

    kinds = defaultdict(list)
    for agent, o, probs, action, _ in steps:
        n = steps_to_paddle(o, agent)
        kind = "approaching, <= %d steps" % args.deciding_steps if n <= args.deciding_steps else (
            "approaching, later" if math.isfinite(n) else "receding")
        kinds[kind].append((o, probs, scripted_tracker_action(o), intercept_action(o, agent), intercept_y(o, agent)))
    lengths = [t for _, t, _, _ in ends]
    print(f"\n## {mode} actions: {len(ends)} episodes, mean length {np.mean(lengths):.0f} of {max_cycles}, "
          f"{sum(m is not None for _, _, m, _ in ends)} ended by a miss")
    print("\n| states | share of steps | mean P(tracker's action) | most likely = tracker's | "
          "mean P(intercept action) | most likely = intercept action | mean entropy (nats, uniform 1.10) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    total = sum(len(v) for v in kinds.values())
    for kind in sorted(kinds):
        rows = kinds[kind]
        p_track = np.mean([p[a] for _, p, a, _, _ in rows])
        agree = np.mean([int(p.argmax()) == a for _, p, a, _, _ in rows])
        p_aim = np.mean([p[b] for _, p, _, b, _ in rows])
        agree_aim = np.mean([int(p.argmax()) == b for _, p, _, b, _ in rows])
        entropy = np.mean([-(p * np.log(np.clip(p, 1e-12, 1))).sum() for _, p, _, _, _ in rows])
        print(f"| {kind} | {len(rows) / total:.0%} | {p_track:.2f} | {agree:.0%} | {p_aim:.2f} | {agree_aim:.0%} | {entropy:.2f} |")

    misses = [(m, h) for _, _, m, h in ends if m is not None]
    if misses:
        print(f"\nmisses: {sum(m == 'paddle_0' for m, _ in misses)} by paddle_0, {sum(m == 'paddle_1' for m, _ in misses)} by paddle_1")
        print("\n| miss | paddle | ball y - paddle y at the end | mean P(tracker's action), last steps | tracker's action taken, last steps |")
        print("| --- | --- | --- | --- | --- |")
        for i, (missed, history) in enumerate(misses):
            own = [(o, p, a) for agent, o, p, a, _ in history if agent == missed][-args.window:]
            gap = float(own[-1][0][1] - own[-1][0][4])
            p_track = np.mean([p[scripted_tracker_action(o)] for o, p, _ in own])
            took = np.mean([a == scripted_tracker_action(o) for o, _, a in own])
            print(f"| {i} | {missed} | {gap:+.2f} | {p_track:.2f} | {took:.0%} |")

    deciding = kinds.get("approaching, <= %d steps" % args.deciding_steps, [])
    if deciding:
        edges = np.linspace(-0.8, 0.8, args.bins + 1)
        probs = np.array([p for _, p, _, _, _ in deciding])
        for name, gaps in (
            ("ball y now - paddle y", np.array([o[1] - o[4] for o, *_ in deciding])),
            ("intercept y - paddle y", np.array([y - o[4] for o, _, _, _, y in deciding])),
        ):
            print(f"\ntracking curve, deciding states, by {name} (the rule moves up below -0.05, down above +0.05):")
            print(f"\n| {name} | states | P(stay) | P(up) | P(down) |")
            print("| --- | --- | --- | --- | --- |")
            for lo, hi in zip(edges[:-1], edges[1:]):
                sel = (gaps >= lo) & (gaps < hi)
                if sel.any():
                    stay, up, down = probs[sel].mean(0)
                    print(f"| [{lo:+.1f}, {hi:+.1f}) | {sel.sum()} | {stay:.2f} | {up:.2f} | {down:.2f} |")

    # What the up/down preference follows, over every step: a least-squares fit of log P(up)/P(down)
    # on the five features (a tracker would weigh ball y and paddle y equally and oppositely).
    obs = np.array([o for o, *_ in (row for rows in kinds.values() for row in rows)], dtype=np.float64)
    probs = np.array([p for _, p, *_ in (row for rows in kinds.values() for row in rows)], dtype=np.float64)
    target = np.log(np.clip(probs[:, 1], 1e-12, 1) / np.clip(probs[:, 2], 1e-12, 1))
    design = np.c_[obs, np.ones(len(obs))]
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    explained = 1 - np.var(target - design @ coef) / max(np.var(target), 1e-12)
    weights = ", ".join(f"{name} {c:+.2f}" for name, c in zip(FEATURE_NAMES + ("constant",), coef))
    print(f"\nlog P(up)/P(down) ~ linear in the features, all steps: {weights}; explains {explained:.0%} of its variance")


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    if not args.checkpoint:
        raise SystemExit("--checkpoint PATH is required (an RLlib algorithm checkpoint of a pong features run)")
    from rllib_quantum.evaluation import EvaluationSetup, eval_seeds, load_modules

    setup = EvaluationSetup.from_checkpoint(args.checkpoint)
    if setup.env != "rllib_quantum/cooperative_pong" or setup.env_config.get("obs", "features") != "features":
        raise SystemExit(f"needs a cooperative pong features checkpoint, got env {setup.env!r} with {dict(setup.env_config)}")
    modules = load_modules(args.checkpoint)
    seeds = eval_seeds(args.episodes, setup.seed)
    print(f"checkpoint {args.checkpoint}: env seeds {seeds[0]}..{seeds[-1]}")
    for greedy in (False, True):
        steps, ends = play(setup, modules, seeds, greedy)
        report(steps, ends, args, "greedy" if greedy else "sampled", setup.env_config.get("max_cycles", 900))


if __name__ == "__main__":
    main()
