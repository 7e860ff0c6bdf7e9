"""Can the shipped circuit play cooperative pong at all, and how decisive are its read-outs?

Two measurements that separate "the circuit cannot represent a good policy" from "PPO does not
find it", on the features view (no Ray, plain torch, seconds):

1. **Read-out spread at initialisation.** The actor circuit of
   ``configs/quantum_independent_pong_features.yaml`` on ``states`` pong states (random play):
   mean ``|<Z_i>|`` of the read-out wires and their standard deviation across states, for several
   seeds. Logits are ``output_scale * <Z_i>``, so the spread bounds how different the action
   probabilities of two states can be.
2. **How linear the initial policy is in the features.** For circuit depths and input scalings
   (``settings``: ``n_layers:input_scale_init[:ansatz]``, the shipped config otherwise), the share of the
   variance of the initial logits across the same states that a linear function of the 5
   features explains (R^2 of a least-squares fit, mean over the init seeds). A small MLP starts
   nearly linear; a circuit whose angles span a radian or more per upload, re-uploaded several
   times, starts as a high-frequency trigonometric function of its inputs.
3. **Behaviour cloning.** The same module (circuit as policy, no pre-encoder) trained by
   cross-entropy to imitate the scripted ball tracker on ``states`` states (tracker actions with
   30 % random ones mixed in, so off-track states are seen), then played greedily on
   ``episodes`` fresh evaluation episodes (:mod:`rllib_quantum.evaluation`): if it scores near the tracker's 100 per paddle, the circuit can
   represent a ceiling-level policy.

    python benchmarks/circuit_capacity.py [--states 20000] [--steps 1500] [--episodes 5]
        [--settings 4:1.0 4:0.5 6:1.0 4:1.0:controlled_rotations ...]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import yaml
from common import parse_args, setup_torch

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    config: str = "quantum_independent_pong_features"
    states: int = 20000  # pong states per paddle to measure and imitate
    seeds: int = 5  # circuits initialised for the read-out spread
    steps: int = 1500  # behaviour-cloning Adam steps per paddle
    batch: int = 256
    lr: float = 0.01
    episodes: int = 5  # greedy episodes of the cloned policies
    seed: int = 0
    # n_layers:input_scale_init[:ansatz] for the linearity measurement (the shipped circuit is 4:1.0)
    settings: tuple = ("4:1.0", "4:0.5", "4:0.25", "4:1.57", "4:3.0", "3:1.0", "6:1.0", "4:1.0:controlled_rotations")


def linear_r2(x, y) -> float:
    """Share of the variance of ``y`` (``[n, k]``) explained by a least-squares fit ``x @ a + b``."""
    import torch

    x, y = x.double(), y.double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    residual = y - design @ torch.linalg.lstsq(design, y).solution
    return float(1 - residual.var(0).sum() / y.var(0).sum())


def collect_states(n: int, seed: int, expert_prob: float):
    """``{paddle: (obs [n, 5], tracker action [n])}`` from play that follows the tracker with
    probability ``expert_prob`` per step and acts at random otherwise."""
    import torch

    from rllib_quantum.envs import CooperativePongFeatures, scripted_tracker_action

    rng = np.random.default_rng(seed)
    env = CooperativePongFeatures()
    obs, _ = env.reset(seed=seed)
    data = {a: ([], []) for a in obs}
    while len(data["paddle_0"][0]) < n:
        actions = {}
        for agent, o in obs.items():
            expert = scripted_tracker_action(o)
            data[agent][0].append(o)
            data[agent][1].append(expert)
            actions[agent] = expert if rng.random() < expert_prob else int(rng.integers(3))
        obs, *_ = env.step(actions)
        if not env.agents:
            obs, _ = env.reset()
    return {a: (torch.tensor(np.array(x)), torch.tensor(y)) for a, (x, y) in data.items()}


def make_module(model_config: dict):
    from rllib_quantum import QuantumPPORLModule

    return QuantumPPORLModule(
        observation_space=gym.spaces.Box(-1, 1, (5,), np.float32),
        action_space=gym.spaces.Discrete(3),
        model_config=model_config,
    )


def clone_tracker(model_config: dict, states: int, steps: int, batch: int, lr: float, seed: int) -> dict:
    """``{paddle: module}``: one module of ``model_config`` per paddle whose actor (circuit, scalings,
    read-out head; the critic untouched) is trained by cross-entropy to imitate the scripted ball
    tracker on ``states`` states of that paddle (tracker play with 30 % random actions), ``steps``
    Adam steps of ``batch`` rows at ``lr``; prints one table row per paddle."""
    import torch
    from ray.rllib.core.columns import Columns

    data = collect_states(states, seed + 1, expert_prob=0.7)
    modules = {}
    print("\n| paddle | cloning loss | action accuracy | output scale after | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for agent, (x, y) in data.items():
        torch.manual_seed(seed)
        module = make_module(model_config)
        actor_params = [p for name, p in module.named_parameters() if not name.startswith("critic")]
        optimizer = torch.optim.Adam(actor_params, lr=lr)
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,))
            logits = module.forward_train({Columns.OBS: x[idx]})[Columns.ACTION_DIST_INPUTS]
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (module.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS].argmax(-1) == y).float().mean()
        modules[agent] = module
        print(f"| {agent} | {loss.item():.3f} | {accuracy:.3f} | {module.actor.output_scale.abs().mean():.2f} | {time.perf_counter() - start:.1f} |")
    return modules


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    print(setup_torch(threads=1, seed=args.seed))
    import torch
    from ray.rllib.core.columns import Columns

    from rllib_quantum import evaluate_modules, load_experiment

    model_config = yaml.safe_load((ROOT / "configs" / f"{args.config}.yaml").read_text())["model_config"]
    print(f"config {args.config}: model_config {model_config}\n")

    # 1. Read-out spread of freshly initialised circuits on random-play states.
    random_states = collect_states(args.states, args.seed, expert_prob=0.0)["paddle_0"][0]
    print("| init seed | mean abs <Z> (read-out wires) | std across states | logit std across states |")
    print("| --- | --- | --- | --- |")
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        module = make_module(model_config)
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: random_states})[Columns.ACTION_DIST_INPUTS]
            expvals = module.actor(module.encoder(random_states)) / module.actor.output_scale
        print(f"| {seed} | {expvals.abs().mean():.3f} | {expvals.std(0).mean():.3f} | {logits.std(0).mean():.3f} |")

    # 2. How linear the initial policy is in the features, by depth and input scaling.
    print("\n| n_layers | input_scale_init | ansatz | linear R^2 of the initial logits (mean over init seeds) | per seed |")
    print("| --- | --- | --- | --- | --- |")
    x = random_states
    for setting in args.settings:
        layers, scale, *ansatz = setting.split(":")
        circuit = {**model_config["circuit"], "n_layers": int(layers), "input_scale_init": float(scale)}
        circuit["ansatz"] = ansatz[0] if ansatz else circuit.get("ansatz", "strongly_entangling")
        r2 = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            module = make_module({**model_config, "circuit": circuit})
            with torch.no_grad():
                logits = module.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
            r2.append(linear_r2(x, logits))
        per_seed = ", ".join(f"{v:.2f}" for v in r2)
        print(f"| {layers} | {float(scale):g} | {circuit['ansatz']} | {np.mean(r2):.2f} | {per_seed} |")

    # 3. Behaviour cloning of the scripted tracker, then greedy play.
    modules = clone_tracker(model_config, args.states, args.steps, args.batch, args.lr, args.seed)
    experiment = load_experiment(ROOT / "configs" / f"{args.config}.yaml")
    report = evaluate_modules(experiment, modules, episodes=args.episodes, greedy=True)
    print(f"\ncloned circuits, {report.summary()}")
    print("(scripted tracker: 100 per paddle; random play: about -3.7; episodes last at most 900 steps)")


if __name__ == "__main__":
    main()
