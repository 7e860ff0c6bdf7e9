"""``rllib-quantum``: train an experiment from YAML through Ray Tune, or describe its modules.

    rllib-quantum train CONFIG [--stop-iters N] [--eval-episodes N] [--set key=value ...] [--storage DIR] [--address ADDR]
    rllib-quantum describe CONFIG [--set key=value ...]
    rllib-quantum tune SEARCH [--num-samples N] [--set key=value ...] [--storage DIR] [--address ADDR]

Every config and override is validated before Ray starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

from rllib_quantum.config import load_experiment, parse_overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rllib-quantum", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add_overrides(p, help_text):
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text)

    def add_ray_options(p):
        p.add_argument("--storage", default=None, help="results folder (default: ./results)")
        p.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto, or HOST:6379) instead of starting one")
        p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance (default: all)")

    override_help = "override a config key, dotted, value parsed as YAML (e.g. --set ppo.lr=0.001); repeatable"

    train = sub.add_parser("train", help="run the experiment with Ray Tune")
    train.add_argument("config", help="experiment YAML (see configs/)")
    add_overrides(train, override_help)
    train.add_argument("--stop-iters", type=int, default=None, help="stop after N training iterations")
    add_ray_options(train)
    train.add_argument("--api", choices=("tuner", "run"), default="tuner", help="ray.tune.Tuner().fit() or ray.tune.run()")
    train.add_argument(
        "--eval-episodes", type=int, default=20,
        help="after training, play this many greedy episodes on fresh env seeds with the final policies (0: skip)",
    )

    describe = sub.add_parser("describe", help="print each module's circuit diagram and parameter counts")
    describe.add_argument("config", help="experiment YAML (see configs/)")
    add_overrides(describe, override_help)

    search = sub.add_parser("tune", help="hyperparameter search from a tuning/*.yaml file")
    search.add_argument("search", help="search YAML (see tuning/)")
    add_overrides(search, "fix a base-experiment key for every trial (dotted, value parsed as YAML); repeatable")
    search.add_argument("--num-samples", type=int, default=None, help="trials to sample (default: the file's)")
    add_ray_options(search)
    return parser


def _check_cpus(args) -> None:
    if getattr(args, "num_cpus", None) is not None and args.num_cpus < 1:
        raise ValueError(f"--num-cpus must be >= 1, got {args.num_cpus}")


def _load(args):
    _check_cpus(args)
    overrides = parse_overrides(args.overrides)
    if getattr(args, "stop_iters", None) is not None:
        if args.stop_iters < 1:
            raise ValueError(f"--stop-iters must be >= 1, got {args.stop_iters}")
        overrides["stop"] = {"training_iteration": args.stop_iters}
    if getattr(args, "eval_episodes", 0) < 0:
        raise ValueError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")
    return load_experiment(args.config, overrides)


def describe(exp) -> str:
    """Text: per module, its class, parameter counts and (quantum) circuit diagrams."""
    from rllib_quantum.circuits import draw

    lines = [f"experiment {exp.name}: strategy {exp.plan.strategy}, module {exp.spec['module']}, env {exp.plan.env}"]
    multi = exp.build_modules()
    for module_id, module in multi.items():
        agents = ", ".join(exp.plan.agents_of_module[module_id])
        lines.append(f"\n== module {module_id!r} (agents: {agents}) {type(module).__name__}")
        lines.append(f"   observation {module.observation_space}, action {module.action_space}")
        if hasattr(module, "parameter_counts"):
            counts = module.parameter_counts()
            lines.append(
                f"   parameters: quantum {counts['quantum']}, classical {counts['classical']}, total {counts['total']}"
            )
            for name, layer in module.quantum_layers().items():
                lines.append(f"   circuit {name} ({layer.spec.n_parameters} parameters, execution {layer.spec.execution}):")
                lines.append("\n".join("     " + row for row in draw(layer.spec).splitlines()))
        else:
            total = sum(p.numel() for p in module.parameters() if p.requires_grad)
            lines.append(f"   parameters: quantum 0, classical {total}, total {total}")
    return "\n".join(lines)


def _progress_callback():
    from ray import tune

    class ProgressLine(tune.Callback):
        """One compact line per training iteration: steps, per-agent return, time."""

        def on_trial_result(self, iteration, trials, trial, result, **info):
            runners = result.get("env_runners", {})
            agents = runners.get("agent_episode_returns_mean") or {}
            returns = " ".join(f"{a}={float(v):7.2f}" for a, v in sorted(agents.items())) or "(no episode finished yet)"
            learners = {m: r for m, r in (result.get("learners") or {}).items() if m != "__all_modules__"}
            idle = sorted(m for m, r in learners.items() if not r.get("num_module_steps_trained"))
            warning = f" | WARNING: modules {idle} trained nothing (sampling timed out?)" if idle else ""
            print(
                f"[{trial.trial_id} iter {result.get('training_iteration', 0):4d}] env steps {int(runners.get('num_env_steps_sampled_lifetime', 0)):8d}"
                f" | mean return {returns} | {result.get('time_this_iter_s', 0):6.1f} s/iter{warning}",
                flush=True,
            )

    return ProgressLine()


def train(exp, storage: Optional[str], address: Optional[str], num_cpus: Optional[int], api: str, eval_episodes: int = 20) -> dict:
    """Runs ``exp`` with Tune; writes the learning curve; evaluates the final policies on
    ``eval_episodes`` fresh greedy episodes; prints and returns the summary numbers."""
    from ray import tune

    from rllib_quantum.envs import reference_returns
    from rllib_quantum.plotting import agent_return_columns, plot_learning_curves, read_progress

    start = time.time()
    _init_ray(address, num_cpus)
    callbacks = [_progress_callback()]
    if api == "run":
        analysis = tune.run(exp.trainable, verbose=1, callbacks=callbacks, **exp.tune_run_kwargs(storage))
        trial = analysis.trials[0]
        if trial.status != "TERMINATED":
            raise RuntimeError(f"trial {trial} ended {trial.status}; see {trial.path}")
        result, path, checkpoint = trial.last_result, Path(trial.path), trial.checkpoint
        df = read_progress(path)
    else:
        grid = exp.tuner(storage, verbose=1, callbacks=callbacks).fit()
        res = grid[0]
        if res.error:
            raise RuntimeError(f"training failed: {res.error}")
        result, path, df, checkpoint = res.metrics, Path(res.path), res.metrics_dataframe, res.checkpoint
    train_s = time.time() - start
    levels = reference_returns(exp.plan.env, exp.spec["env_config"])
    runners = result.get("env_runners", {})
    last = {a: df[c].tail(10).mean() for a, c in agent_return_columns(df.columns).items()}
    summary = {
        "iterations": int(result.get("training_iteration", 0)),
        "env_steps": int(runners.get("num_env_steps_sampled_lifetime", 0)),
        "mean_return_per_agent": {a: round(float(v), 2) for a, v in sorted((runners.get("agent_episode_returns_mean") or {}).items())},
        "last10_return_per_agent": {a: round(float(v), 2) for a, v in sorted(last.items())},
        "train_time_s": round(train_s, 1),
        "logs": str(path),
        "evaluation": None,
    }
    if eval_episodes and checkpoint is not None:
        from rllib_quantum.evaluation import evaluate_modules, load_modules

        report = evaluate_modules(exp, load_modules(checkpoint.path), episodes=eval_episodes, greedy=True)
        summary["evaluation"] = {a: {"mean": round(report.mean(a), 2), "ci95": round(report.ci95(a), 2)} for a in sorted(report.returns)}
        print(f"\nEVALUATION {exp.name}: {report.summary()}", flush=True)
    final = {a: (v["mean"], v["ci95"]) for a, v in (summary["evaluation"] or {}).items()}
    curve = plot_learning_curves(
        {exp.name: df}, path / "learning_curve.png", title=exp.name, smooth=10, levels=levels, final_evaluation=final
    )
    summary["learning_curve"] = str(curve)
    summary["wall_time_s"] = round(time.time() - start, 1)
    print(f"\n{summary_line(exp.name, summary, levels)}", flush=True)
    return summary


def summary_line(name: str, summary: dict, levels: dict) -> str:
    """The one-line ``SUMMARY`` of a training run: how far it got, next to the reference levels."""
    def per_agent(values):
        return ", ".join(f"{a} {v:.1f}" for a, v in values.items() if v == v) or "n/a (no episode finished)"

    parts = [
        f"SUMMARY {name}: {summary['iterations']} iterations, {summary['env_steps']} env steps, "
        f"training {summary['train_time_s']:.0f} s",
        f"training return per agent, mean of the last 10 iterations: {per_agent(summary['last10_return_per_agent'])}",
    ]
    if summary["evaluation"]:
        evaluation = ", ".join(f"{a} {v['mean']:.1f} +- {v['ci95']:.1f}" for a, v in summary["evaluation"].items())
        parts.append(f"greedy evaluation: {evaluation}")
    if levels:
        parts.append("reference: " + ", ".join(f"{k} {v:g}" for k, v in levels.items()))
    parts.append(f"wall time {summary['wall_time_s']:.0f} s, logs: {summary['logs']}, curve: {summary['learning_curve']}")
    return " | ".join(parts)


def _init_ray(address: Optional[str], num_cpus: Optional[int]) -> None:
    import ray

    from rllib_quantum.envs import register_envs

    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    register_envs()  # Tune's registry is per Ray session: (re-)register on the one we use


def tune_search(search, storage: Optional[str], num_samples: Optional[int], address=None, num_cpus=None) -> dict:
    """Runs a :class:`~rllib_quantum.search.Search`; prints and returns the best trial's numbers."""
    _init_ray(address, num_cpus)
    grid = search.tuner(storage, num_samples=num_samples, verbose=1, callbacks=[_progress_callback()]).fit()
    errors = [r.error for r in grid if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed, first: {errors[0]}")
    try:
        best = grid.get_best_result(metric=search.metric, mode=search.mode, scope="all")
    except RuntimeError:
        raise RuntimeError(
            f"no trial reported a value for {search.metric!r} (no episode ended?): raise max_iterations or the batch size"
        ) from None
    summary = {
        "trials": len(grid),
        "best_config": best.config,
        "best_metric": float(best.metrics_dataframe[search.metric].max() if search.mode == "max" else best.metrics_dataframe[search.metric].min()),
        "logs": str(Path(best.path).parent),
    }
    print(f"\nBEST of {summary['trials']} trials: {search.metric} = {summary['best_metric']:.2f} with {best.config}; logs: {summary['logs']}")
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tune":
        from rllib_quantum.search import load_search

        try:
            _check_cpus(args)
            if args.num_samples is not None and args.num_samples < 1:
                raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
            search = load_search(args.search, parse_overrides(args.overrides))
        except (ValueError, TypeError, FileNotFoundError) as err:
            print(f"rllib-quantum: error: {err}", file=sys.stderr)
            return 2
        tune_search(search, args.storage, args.num_samples, args.address, args.num_cpus)
        return 0
    try:
        exp = _load(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"rllib-quantum: error: {err}", file=sys.stderr)
        return 2
    if args.command == "describe":
        print(describe(exp))
        return 0
    train(exp, args.storage, args.address, args.num_cpus, args.api, args.eval_episodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
