"""Learning on cooperative pong features over several seeds: quantum vs classical vs frozen circuit.

Each variant trains its config once per seed for the config's budget (its ``stop`` on env
steps: 500k), then plays ``eval_episodes`` greedy episodes on fresh env seeds with the final
policies, and the same seeds again with sampled actions. Seeds run as Tune trials side by side,
one CPU each: the local env runner samples all the envs per iteration that a config spreads over its remote runners
(quantum 2 x 64, classical 2 x 16), so batches and updates are the same.

Variants:
- ``quantum``: configs/quantum_independent_pong_features.yaml (the circuit is the policy)
- ``classical``: configs/classical_independent_pong_features.yaml (RLlib's 64x64 MLPs)
- ``quantum-frozen``: the quantum config with ``model_config.circuit.trainable_weights: false``:
  circuit weights frozen at their random initialisation; scalings and critic still train (the
  ablation that shows whether the circuit does the work)
- ``quantum-shared``, ``quantum-averaged``, ``quantum-joint``: the other strategies' quantum
  configs (configs/quantum_{shared,averaged,joint}_pong_features.yaml): one policy for both
  paddles, circuits averaged every iteration, one centralised policy (its return halved per paddle)

Prints per variant and seed: the training return per paddle (RLlib's smoothed mean, averaged over
the last 10 iterations), the greedy evaluation mean +- 95 % CI and episode length, the sampled
evaluation (the policy as trained, at its final inverse temperature: where it beats the greedy
one, argmax play has states it fails in), then a summary with how many seeds reach the goal
(>= 90 per paddle on the training return and the greedy evaluation). Writes one learning-curve
PNG per variant (per-seed curves, smoothed, with the random and ceiling levels) and, for several
variants, ``learning_comparison.png`` (each variant's mean curve over its seeds, their range
shaded). ``--curves-from`` redraws that figure from earlier runs' ``--storage`` folders, seeds of
the same variant from several folders together, without training, and prints each mean curve at
every 50k env steps (the figure's numbers) and how well a run's training return at 150k, 200k and
250k env steps predicts its final one (Spearman's rank correlation over runs, per group and over
all: near 0, keeping the best of several short runs would pick at random). ``LABEL=FOLDER``
names a folder's runs ``LABEL`` instead of by variant (folders with the same label are pooled),
to set two runs of one variant side by side.

    python benchmarks/learning.py [--variants quantum classical quantum-frozen] [--seeds 0 1 2 3 4]
    python benchmarks/learning.py --variants classical --set "ppo.lr=[[0, 0.0025], [500000, 0.00025]]"
    python benchmarks/learning.py --curves-from results/learning results/learning-seeds-5-9
    python benchmarks/learning.py --curves-from shipped=results/learning probe=results/probe

``--set key=value`` (as ``rllib-quantum train --set``, values parsed as YAML) changes every variant's
config the same way: a probe of one setting over several seeds without editing the configs. With
``--set strategy=shared`` (or ``joint``, ``averaged``) the same settings run as another
distribution strategy; the joint strategy's one agent gets both paddles' reward, so its returns
are halved to per-paddle numbers (its 10 features and two-paddle actions take no pong mirror: add
``--set model_config.mirror=null``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import yaml
from common import parse_args, start_ray

from rllib_quantum.plotting import AGENT_RETURN_PREFIX, STEPS

ROOT = Path(__file__).resolve().parents[1]
GOAL = 90.0
PER_PADDLE = "training return per paddle"
VARIANTS = {
    "quantum": ("quantum_independent_pong_features", {}),
    "classical": ("classical_independent_pong_features", {}),
    "quantum-frozen": ("quantum_independent_pong_features", {"model_config.circuit.trainable_weights": False}),
    "quantum-shared": ("quantum_shared_pong_features", {}),
    "quantum-averaged": ("quantum_averaged_pong_features", {}),
    "quantum-joint": ("quantum_joint_pong_features", {}),
}


def same_envs_in_one_process(config: dict) -> dict:
    """Overrides that sample all of a config's envs (runners x envs per runner) on the local runner.
    ``config`` is the variant's config with its overrides applied, so that ``--set env_runners...``
    changes the envs sampled rather than being replaced here."""
    runners = config["env_runners"]
    envs = max(1, runners.get("num_env_runners", 2)) * runners.get("num_envs_per_env_runner", 1)
    return {"env_runners.num_env_runners": 0, "env_runners.num_envs_per_env_runner": envs}


@dataclasses.dataclass
class Args:
    variants: tuple = ("quantum", "classical", "quantum-frozen")
    seeds: tuple = (0, 1, 2, 3, 4)
    iterations: int = 0  # 0: the config's budget (stop on env steps) / its batch size
    eval_episodes: int = 20
    storage: str = "results/learning"
    plots: str = "docs/img"
    set: tuple = ()  # "key=value" overrides for every variant's config (as rllib-quantum train --set)
    curves_from: tuple = ()  # [LABEL=]FOLDER storage folders of earlier runs: only redraw (and print) the mean curves


def variant_config(name: str, args: Args):
    """The variant's config (a dict) and its overrides: the variant's own, then ``--set``."""
    from rllib_quantum.config import parse_overrides

    config, overrides = VARIANTS[name]
    base = yaml.safe_load((ROOT / "configs" / f"{config}.yaml").read_text())
    return base, {**overrides, **parse_overrides(args.set)}


def scored_agent(exp) -> tuple:
    """The agent whose return is reported, and the factor to a per-paddle return: ``paddle_0`` (both
    paddles get the same reward), or the joint strategy's one agent, whose reward is both paddles'."""
    return ("joint", 0.5) if exp.plan.strategy == "joint" else ("paddle_0", 1.0)


def per_paddle_frame(df, agent: str, per_paddle: float):
    """``df`` with ``agent``'s return column as a per-paddle return (the curves' reference levels are per paddle)."""
    if per_paddle == 1.0:
        return df
    return df.assign(**{AGENT_RETURN_PREFIX + agent: df[AGENT_RETURN_PREFIX + agent] * per_paddle})


def per_paddle_return(df):
    """``df``'s steps and its per-paddle training return (``paddle_0``'s, or the joint agent's halved)."""
    import pandas as pd

    agent, factor = ("paddle_0", 1.0) if AGENT_RETURN_PREFIX + "paddle_0" in df else ("joint", 0.5)
    return pd.DataFrame({STEPS: df[STEPS], PER_PADDLE: df[AGENT_RETURN_PREFIX + agent] * factor})


def stored_runs(folders) -> dict:
    """``{name: [trial folder, ...]}`` from storage folders of earlier runs (their ``learning-<variant>``
    experiments), seeds of the same variant from several folders together. A folder given as
    ``LABEL=FOLDER`` puts its runs under ``LABEL`` (every variant in it), else under the variant."""
    groups = {}
    for entry in folders:
        # LABEL=FOLDER, unless the whole entry is a folder (a path may hold "=" itself)
        label, path = entry.split("=", 1) if "=" in entry and not Path(entry).exists() else ("", entry)
        folder = Path(path)
        experiments = sorted(folder.glob("learning-*"))
        if not experiments:
            raise SystemExit(
                f"benchmarks/learning.py: error: --curves-from {folder}: no learning-<variant> folder in it"
            )
        for experiment in experiments:
            trials = [t for t in sorted(experiment.iterdir())
                      if (t / "result.json").is_file() or (t / "progress.csv").is_file()]
            groups.setdefault(label or experiment.name[len("learning-"):], []).extend(trials)
    return groups


def per_paddle_frames(groups: dict) -> dict:
    """``{name: [per-paddle return DataFrame, ...]}`` of ``{name: [trial folder or DataFrame, ...]}``."""
    from rllib_quantum.plotting import read_progress

    return {name: [per_paddle_return(run if hasattr(run, "columns") else read_progress(run)) for run in runs]
            for name, runs in groups.items()}


def rank_correlation(xs, ys) -> float:
    """Spearman's rank correlation of two equally long sequences (nan if either is constant).

    Example:
        >>> round(rank_correlation([1, 2, 3, 4], [10, 30, 20, 40]), 6), rank_correlation([1, 2, 3], [3, 2, 1])
        (0.8, -1.0)
    """
    import pandas as pd

    # Pearson's correlation of the ranks (ties at their mean rank) is Spearman's
    return float(pd.Series(xs, dtype=float).rank().corr(pd.Series(ys, dtype=float).rank()))


def early_and_final(frames: dict, at=(150_000, 200_000, 250_000), window: int = 25_000) -> str:
    """Whether a run's early training return predicts its final one: for every run of ``frames``
    (:func:`per_paddle_frames`), the mean training return of its iterations within ``window`` env
    steps of each point of ``at``, against the mean of its last 10 iterations (the headline's
    training return); a markdown table of Spearman's rank correlation over runs, per group and
    over all runs together. A correlation near 0 means keeping the best of several short runs
    would pick at random. Runs without a value at a point (no finished episode yet) are left out.

    Example:
        >>> import pandas as pd
        >>> run = lambda early, final: pd.DataFrame({STEPS: [100_000, 200_000] + [500_000] * 10,
        ...                                          PER_PADDLE: [0.0, early] + [final] * 10})
        >>> frames = {"a": [run(10, 50), run(20, 60)], "b": [run(30, 90), run(40, 70)]}
        >>> print(early_and_final(frames, at=(200_000,), window=1))
        | runs | n | 200k |
        | --- | --- | --- |
        | a | 2 | 1.00 |
        | b | 2 | -1.00 |
        | all | 4 | 0.80 |
    """
    def values(df) -> tuple:  # (final return, [return near each point of at])
        near = [df[(df[STEPS] - point).abs() <= window][PER_PADDLE].mean() for point in at]
        return df[PER_PADDLE].tail(10).mean(), near

    groups = {name: [values(df) for df in runs] for name, runs in frames.items()}
    groups["all"] = [v for group in groups.values() for v in group]
    lines = ["| runs | n | " + " | ".join(f"{point // 1000}k" for point in at) + " |",
             "| --- | --- | " + " | ".join("---" for _ in at) + " |"]
    for name, runs in groups.items():
        cells, most = [], 0
        for i in range(len(at)):
            pairs = [(near[i], final) for final, near in runs if math.isfinite(near[i]) and math.isfinite(final)]
            most = max(most, len(pairs))
            cells.append(f"{rank_correlation(*zip(*pairs)):.2f}" if len(pairs) >= 2 else "-")
        lines.append(f"| {name} | {most} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_comparison(frames: dict, levels: dict, out: Path) -> Path:
    """One figure: each variant's mean training-return curve over its seeds, their range shaded
    (``frames``: :func:`per_paddle_frames`)."""
    from rllib_quantum.plotting import plot_mean_curves

    return plot_mean_curves(frames, out, column=PER_PADDLE,
                            title="training return per paddle, mean over seeds", smooth=10, levels=levels)


def budget_iterations(config: dict) -> int:
    """Iterations that sample the config's budget (``stop`` in env steps), at its batch size as
    overridden by ``--set`` (a smaller batch: more iterations, the same env steps)."""
    return math.ceil(config["stop"][STEPS] / config["ppo"]["train_batch_size_per_learner"])


def run_variant(name: str, agent: str, args: Args):
    from rllib_quantum.config import apply_overrides
    from rllib_quantum.search import Search

    base, overrides = variant_config(name, args)
    config = apply_overrides(base, overrides)
    iterations = args.iterations or budget_iterations(config)
    search = Search(
        name=f"learning-{name}", base=base,
        overrides={**overrides, **same_envs_in_one_process(config)},
        search_space={"seed": {"grid": list(args.seeds)}}, metric=AGENT_RETURN_PREFIX + agent, mode="max", num_samples=1,
        max_iterations=iterations, scheduler={"type": "fifo"}, evaluation_episodes=args.eval_episodes,
    )
    grid = search.tuner(str(ROOT / args.storage), verbose=0).fit()
    if grid.errors:
        raise RuntimeError(grid.errors[0])
    return {r.config["seed"]: r for r in grid}


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    from rllib_quantum.config import build_experiment
    from rllib_quantum.envs import COOPERATIVE_PONG, reference_returns
    from rllib_quantum.errors import ConfigError

    levels = reference_returns(COOPERATIVE_PONG, {"obs": "features"})
    comparison = ROOT / args.plots / "learning_comparison.png"
    if args.curves_from:  # a redraw: no configs built, no training
        groups = stored_runs(args.curves_from)
        for name, runs in groups.items():
            print(f"{name}: {len(runs)} runs")
        frames = per_paddle_frames(groups)  # every progress.csv read once, for the figure and its table
        print(f"curves: {plot_comparison(frames, levels, comparison)}")
        from rllib_quantum.plotting import mean_curve_table

        print(mean_curve_table(frames, column=PER_PADDLE, smooth=10))
        print("\ndoes a run's early training return predict its final one? Spearman's rank correlation over runs of "
              "the mean return within 25k env steps of each point against the mean of the last 10 iterations:")
        print(early_and_final(frames))
        return
    try:  # a bad --set key or value fails here, naming it, before Ray starts
        scored = {name: scored_agent(build_experiment(*variant_config(name, args))) for name in args.variants}
    except ConfigError as err:
        raise SystemExit(f"benchmarks/learning.py: error: {err}") from None
    start_ray()
    from rllib_quantum.plotting import plot_learning_curves
    from rllib_quantum.search import GREEDY_EVAL_PREFIX, SAMPLED_EVAL_PREFIX

    frames = {}
    if args.set:
        print(f"every variant with --set {' '.join(args.set)}")
    print("| variant | seed | env steps | training return, last 10 iterations | greedy evaluation (mean +- 95% CI) "
          "| eval episode length | sampled evaluation, same seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for name in args.variants:
        agent, per_paddle = scored[name]
        results = run_variant(name, agent, args)
        rows = []
        for seed, result in sorted(results.items()):
            df = result.metrics_dataframe
            train = df[AGENT_RETURN_PREFIX + agent].tail(10).mean() * per_paddle
            evaluation, sampled = result.metrics[GREEDY_EVAL_PREFIX], result.metrics[SAMPLED_EVAL_PREFIX]
            greedy, ci95 = evaluation[f"{agent}_mean"] * per_paddle, evaluation[f"{agent}_ci95"] * per_paddle
            rows.append((train, greedy, sampled[f"{agent}_mean"] * per_paddle))
            print(
                f"| {name} | {seed} | {int(df[STEPS].iloc[-1])} | {train:.1f} | "
                f"{greedy:.1f} +- {ci95:.1f} | {evaluation['episode_len_mean']:.0f} | "
                f"{sampled[f'{agent}_mean'] * per_paddle:.1f} +- {sampled[f'{agent}_ci95'] * per_paddle:.1f} |",
                flush=True,
            )
        summary[name] = rows
        frames[name] = [r.metrics_dataframe for _, r in sorted(results.items())]
        plot = plot_learning_curves(
            {f"seed {s}": per_paddle_frame(r.metrics_dataframe, agent, per_paddle) for s, r in sorted(results.items())},
            ROOT / args.plots / f"learning_{name}.png", title=f"{name}: training return per paddle", smooth=10, levels=levels,
        )
        print(f"curves: {plot.relative_to(ROOT) if plot.is_relative_to(ROOT) else plot}")
    print(f"\n| variant | seeds | mean training return | mean greedy evaluation | seeds >= {GOAL:g} on both | mean sampled evaluation |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rows in summary.items():
        reached = sum(1 for train, evaluation, _ in rows if train >= GOAL and evaluation >= GOAL)
        print(
            f"| {name} | {len(rows)} | {statistics.fmean(r[0] for r in rows):.1f} | "
            f"{statistics.fmean(r[1] for r in rows):.1f} | {reached} of {len(rows)} | {statistics.fmean(r[2] for r in rows):.1f} |"
        )
    if len(frames) > 1:
        print(f"curves of all variants: {plot_comparison(per_paddle_frames(frames), levels, comparison)}")
    print(f"\nreference per paddle: {levels}")


if __name__ == "__main__":
    main()
