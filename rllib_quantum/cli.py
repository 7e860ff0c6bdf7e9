"""``rllib-quantum``: train an experiment from YAML through Ray Tune, or describe its modules.

    rllib-quantum train CONFIG [--stop-iters N] [--eval-episodes N] [--set key=value ...] [--storage DIR]
                               [--address ADDR] [--resume EXPERIMENT_DIR]
    rllib-quantum evaluate CHECKPOINT [--episodes N] [--greedy] [--video out.gif|out.mp4]
    rllib-quantum describe CONFIG [--set key=value ...]
    rllib-quantum tune SEARCH [--num-samples N] [--set key=value ...] [--storage DIR] [--address ADDR]

Every config and override is validated before Ray starts; bad input ends with one line naming the
key path and exit code 2. A run that fails on a worker ends with that worker's own error in one
line, the path of the full log, and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from rllib_quantum.config import load_experiment, parse_overrides
from rllib_quantum.errors import ConfigError


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
    train.add_argument(
        "--resume", default=None, metavar="EXPERIMENT_DIR",
        help="continue an interrupted run of CONFIG from its last checkpoint (the folder Tune wrote, "
        "e.g. results/quantum-independent-pong-features)",
    )

    evaluate = sub.add_parser("evaluate", help="play fresh-seed episodes with a checkpoint's policies")
    evaluate.add_argument("checkpoint", help="an RLlib algorithm checkpoint folder (checkpoint_00000N)")
    evaluate.add_argument("--episodes", type=int, default=20, help="episodes to play (default 20)")
    evaluate.add_argument("--greedy", action="store_true", help="argmax actions (default: sampled)")
    evaluate.add_argument("--video", default=None, metavar="OUT", help="also write the episodes' frames to OUT (.gif or .mp4)")

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
        raise ConfigError("--num-cpus", f"must be >= 1, got {args.num_cpus}")


def _load(args):
    _check_cpus(args)
    overrides = parse_overrides(args.overrides)
    if getattr(args, "stop_iters", None) is not None:
        if args.stop_iters < 1:
            raise ConfigError("--stop-iters", f"must be >= 1, got {args.stop_iters}")
        overrides["stop"] = {"training_iteration": args.stop_iters}
    if getattr(args, "eval_episodes", 0) < 0:
        raise ConfigError("--eval-episodes", f"must be >= 0, got {args.eval_episodes}")
    resume = getattr(args, "resume", None)
    if resume is not None:
        from ray import tune

        if not tune.Tuner.can_restore(str(Path(resume).resolve())):
            raise ConfigError("--resume", f"{resume!r} is not a Tune experiment folder (no experiment state in it)")
    exp = load_experiment(args.config, overrides)
    _check_cpus_fit(exp, args)
    return exp


def _check_cpus_fit(exp, args) -> None:
    """A local Ray with fewer CPUs than one trial asks for would leave the trial PENDING forever."""
    if getattr(args, "address", None):
        return  # a cluster: its nodes decide
    num_cpus = getattr(args, "num_cpus", None)
    available = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
    flag = f"--num-cpus {num_cpus}" if num_cpus is not None else f"this machine's {available} CPUs"
    runners = exp.spec["env_runners"]
    learners = exp.spec["learners"]
    n_runners = runners.get("num_env_runners", 2)
    per_runner = runners.get("num_cpus_per_env_runner", 1)
    n_learners = learners.get("num_learners", 0)
    per_learner = learners.get("num_cpus_per_learner", "auto")
    per_learner = 1 if per_learner == "auto" else per_learner
    learner_cpus = 1 + (n_learners * per_learner if n_learners else 0)  # the algorithm's own process, + remote learners
    evaluation = exp.spec["evaluation"]
    n_eval = evaluation.get("evaluation_num_env_runners", 0)
    per_eval = (evaluation.get("evaluation_config") or {}).get("num_cpus_per_env_runner", per_runner)
    need = learner_cpus + n_runners * per_runner + n_eval * per_eval
    if need > available + 1e-9:
        learner_text = "1 driver/learner" if n_learners == 0 else f"1 driver + {n_learners} learners x {per_learner:g} CPU"
        eval_text = f" + {n_eval} evaluation env runners x {per_eval:g} CPU" if n_eval else ""
        raise ConfigError(
            "env_runners",
            f"one trial needs {need:g} CPUs ({learner_text} + {n_runners} env runners x {per_runner:g} CPU{eval_text}), "
            f"more than {flag}: it would wait forever; lower env_runners.num_env_runners or "
            f"env_runners.num_cpus_per_env_runner (fractions are fine), or raise --num-cpus",
        )


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
        """One compact line per training iteration: steps, per-agent return, time, warnings."""

        def __init__(self):
            self.restarts = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            runners = result.get("env_runners", {})
            agents = runners.get("agent_episode_returns_mean") or {}
            returns = " ".join(f"{a}={float(v):7.2f}" for a, v in sorted(agents.items())) or "(no episode finished yet)"
            learners = {m: r for m, r in (result.get("learners") or {}).items() if m != "__all_modules__"}
            idle = sorted(m for m, r in learners.items() if not r.get("num_module_steps_trained"))
            warning = f" | WARNING: modules {idle} trained nothing (sampling timed out?)" if idle else ""
            restarts = int((result.get("fault_tolerance") or {}).get("num_remote_worker_restarts", 0) or 0)
            if restarts > self.restarts.get(trial.trial_id, 0):
                warning += f" | WARNING: {restarts} env runner restart(s) so far: a runner failed (see the trial's logs)"
            self.restarts[trial.trial_id] = restarts
            print(
                f"[{trial.trial_id} iter {result.get('training_iteration', 0):4d}] env steps {int(runners.get('num_env_steps_sampled_lifetime', 0)):8d}"
                f" | mean return {returns} | {result.get('time_this_iter_s', 0):6.1f} s/iter{warning}",
                flush=True,
            )

    return ProgressLine()


class RunFailed(RuntimeError):
    """A trial failed on a worker: ``str()`` is that worker's own error in one line plus the log path."""


def root_error(err: BaseException) -> str:
    """The innermost error of a Ray/Tune failure chain, as ``Type: message`` (its first line).

    Tune wraps a worker's exception in ``RayTaskError``/``RayActorError`` (``.cause``) and in
    ``__cause__`` chains; RLlib adds its own wrappers. The innermost one is what went wrong.
    """
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = getattr(err, "cause", None) or err.__cause__
        if not isinstance(inner, BaseException):
            break
        err = inner
    text = str(err).strip()
    # A RayTaskError's text is a traceback: keep its last line (the original exception).
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(" ")]
    last = lines[-1] if lines else type(err).__name__
    return last if ":" in last and " " not in last.split(":")[0] else f"{type(err).__name__}: {last}"


def failed_actor_errors() -> List[str]:
    """The last line of every env runner's constructor error in this Ray session (runners that
    could not start). RLlib drops these (with its default restart settings it logs them and then
    fails with an unrelated ``IndexError`` while reading the runners' spaces); Ray's actor table
    keeps them. Empty if Ray is not running or its (private) state API differs."""
    try:
        import ray._private.state as state

        actors = state.actors().values()
    except Exception:  # pragma: no cover - Ray internals moved
        return []
    out = []
    for actor in actors:
        if "EnvRunner" not in str(actor.get("ActorClassName", "")):
            continue  # the trial's own actor fails too, with the driver's error
        cause = actor.get("DeathCause")
        text = getattr(getattr(cause, "creation_task_failure_context", None), "formatted_exception_string", "")
        lines = [ln for ln in str(text).splitlines() if ln.strip() and not ln.startswith(" ")]
        if lines:
            out.append(lines[-1].strip())
    return list(dict.fromkeys(out))


def _failed(error: BaseException, path) -> RunFailed:
    log = Path(path) / "error.txt" if path else None
    where = f"; full log: {log}" if log and log.exists() else (f"; logs: {path}" if path else "")
    cause = root_error(error)
    actors = failed_actor_errors()
    if actors:  # the workers' own errors explain the driver's (often unrelated) one
        return RunFailed(f"training failed: an env runner could not start: {actors[-1]} (driver saw: {cause}){where}")
    return RunFailed(f"training failed on a worker: {cause}{where}")


def train(
    exp, storage: Optional[str], address: Optional[str], num_cpus: Optional[int], api: str, eval_episodes: int = 20,
    resume: Optional[str] = None,
) -> dict:
    """Runs ``exp`` with Tune (or continues the interrupted run in ``resume``); writes the learning
    curve; evaluates the final policies on ``eval_episodes`` fresh greedy episodes; prints and
    returns the summary numbers. Raises :class:`RunFailed` with the worker's own error."""
    from ray import tune

    from rllib_quantum.envs import reference_returns
    from rllib_quantum.plotting import agent_return_columns, first_passing, plot_learning_curves, read_progress

    start = time.time()
    _init_ray(address, num_cpus)
    callbacks = [_progress_callback()]
    if api == "run" and resume is None:
        analysis = tune.run(exp.trainable, verbose=1, callbacks=callbacks, raise_on_failed_trial=False, **exp.tune_run_kwargs(storage))
        trial = analysis.trials[0]
        if trial.status != "TERMINATED":
            raise _failed(trial.error or RuntimeError(f"trial ended {trial.status}"), trial.path)
        result, path, checkpoint = trial.last_result, Path(trial.path), trial.checkpoint
        df = read_progress(path)
    else:
        if resume is not None:  # Tune's restore: the trial continues from its last checkpoint
            # param_space: the CONFIG given now (the same experiment), not the copy in the experiment
            # state, which an interrupt can leave incomplete (its trial then asks for RLlib's defaults).
            tuner = tune.Tuner.restore(
                str(Path(resume).resolve()), exp.trainable, resume_unfinished=True, resume_errored=True,
                param_space=exp.algo_config,
            )
        else:
            tuner = exp.tuner(storage, verbose=1, callbacks=callbacks)
        res = tuner.fit()[0]
        if res.error:
            raise _failed(res.error, res.path)
        result, path, checkpoint = res.metrics, Path(res.path), res.checkpoint
        df = read_progress(path)  # every metric (Tune's metrics_dataframe lacks those that start later)
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
        "periodic_evaluation": _last_periodic_evaluation(df),
        "half_ceiling": None,
    }
    if levels:  # where the training return (5-iteration mean) first reached half the ceiling
        threshold = max(levels.values()) / 2
        summary["half_ceiling"] = {"threshold": threshold, "reached": first_passing(df, threshold, smooth=5)}
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


def _last_periodic_evaluation(df) -> Optional[dict]:
    """The last evaluation RLlib ran during training (the YAML's ``evaluation`` section), or None."""
    from rllib_quantum.plotting import EVAL_RETURN_PREFIX, evaluation_rows

    rows = evaluation_rows(df)
    if not len(rows):
        return None
    last = df.loc[rows[-1]]
    returns = {c[len(EVAL_RETURN_PREFIX):]: round(float(last[c]), 2) for c in df.columns if c.startswith(EVAL_RETURN_PREFIX)}
    return {"iteration": int(last["training_iteration"]), "episodes": int(last["evaluation/env_runners/num_episodes"]),
            "returns": dict(sorted(returns.items()))}


def summary_line(name: str, summary: dict, levels: dict) -> str:
    """The one-line ``SUMMARY`` of a training run: how far it got, next to the reference levels."""
    def per_agent(values):
        return ", ".join(f"{a} {v:.1f}" for a, v in values.items() if v == v) or "n/a (no episode finished)"

    parts = [
        f"SUMMARY {name}: {summary['iterations']} iterations, {summary['env_steps']} env steps, "
        f"training {summary['train_time_s']:.0f} s",
        f"training return per agent, mean of the last 10 iterations: {per_agent(summary['last10_return_per_agent'])}",
    ]
    half = summary.get("half_ceiling")
    if half:
        reached = half["reached"]
        parts.append(
            f"5-iteration mean first >= {half['threshold']:g} (half the ceiling) after {reached['env_steps']} env steps, "
            f"{reached['time_s']:.0f} s of training" if reached else f"5-iteration mean never >= {half['threshold']:g} (half the ceiling)"
        )
    periodic = summary.get("periodic_evaluation")
    if periodic:
        parts.append(f"last periodic evaluation (iteration {periodic['iteration']}, {periodic['episodes']} episodes): "
                     f"{per_agent(periodic['returns'])}")
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
    from rllib_quantum.reproducibility import reproducible_runtime_env

    # Every Ray worker (Tune trial, env runners, learners) gets one string-hash seed: RLlib keeps
    # agents and modules in sets, whose order would otherwise change from run to run.
    runtime_env = reproducible_runtime_env()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env)
    register_envs()  # Tune's registry is per Ray session: (re-)register on the one we use


def tune_search(search, storage: Optional[str], num_samples: Optional[int], address=None, num_cpus=None) -> dict:
    """Runs a :class:`~rllib_quantum.search.Search`; prints and returns the best trial's numbers."""
    _init_ray(address, num_cpus)
    grid = search.tuner(storage, num_samples=num_samples, verbose=1, callbacks=[_progress_callback()]).fit()
    failed = [r for r in grid if r.error]
    if failed:
        raise RunFailed(f"{len(failed)} trial(s) failed; first: {_failed(failed[0].error, failed[0].path)}")
    try:
        best = grid.get_best_result(metric=search.metric, mode=search.mode, scope="all")
    except RuntimeError:
        raise RunFailed(
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


def evaluate(checkpoint: str, episodes: int = 20, greedy: bool = False, video: Optional[str] = None) -> dict:
    """Restores a checkpoint's policies, plays ``episodes`` fresh-seed episodes, prints the per-agent
    mean return with its 95 % CI (and writes ``video``); returns ``{agent: {mean, ci95}, ...}``."""
    from rllib_quantum.envs import register_envs
    from rllib_quantum.evaluation import EvaluationSetup, evaluate_modules, load_modules

    register_envs()
    setup = EvaluationSetup.from_checkpoint(checkpoint)
    frames = [] if video else None
    report = evaluate_modules(setup, load_modules(checkpoint), episodes=episodes, greedy=greedy, frames=frames)
    print(f"EVALUATION {checkpoint}: {report.summary()}", flush=True)
    out = {a: {"mean": round(report.mean(a), 2), "ci95": round(report.ci95(a), 2)} for a in sorted(report.returns)}
    if video:
        from rllib_quantum.video import write_video

        path = write_video(frames, video)
        print(f"VIDEO {path}: {len(frames)} frames", flush=True)
        out["video"] = str(path)
    return out


def _check_evaluate_args(args) -> None:
    from rllib_quantum.video import check_video_path

    if args.episodes < 1:
        raise ConfigError("--episodes", f"must be >= 1, got {args.episodes}")
    if not (Path(args.checkpoint) / "class_and_ctor_args.pkl").is_file():
        raise ConfigError(
            "CHECKPOINT", f"{args.checkpoint!r} is not an RLlib algorithm checkpoint folder (e.g. results/NAME/TRIAL/checkpoint_000000)"
        )
    if args.video:
        check_video_path(args.video)


def _error(err: BaseException, code: int) -> int:
    print(f"rllib-quantum: error: {err}", file=sys.stderr)
    return code


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tune":
        from rllib_quantum.search import load_search

        try:
            _check_cpus(args)
            if args.num_samples is not None and args.num_samples < 1:
                raise ConfigError("--num-samples", f"must be >= 1, got {args.num_samples}")
            search = load_search(args.search, parse_overrides(args.overrides))
        except (ValueError, TypeError, FileNotFoundError) as err:
            return _error(err, 2)
        try:
            tune_search(search, args.storage, args.num_samples, args.address, args.num_cpus)
        except RunFailed as err:
            return _error(err, 1)
        return 0
    if args.command == "evaluate":
        try:
            _check_evaluate_args(args)
        except (ValueError, TypeError) as err:
            return _error(err, 2)
        evaluate(args.checkpoint, args.episodes, args.greedy, args.video)
        return 0
    try:
        exp = _load(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        return _error(err, 2)
    if args.command == "describe":
        print(describe(exp))
        return 0
    try:
        train(exp, args.storage, args.address, args.num_cpus, args.api, args.eval_episodes, resume=args.resume)
    except RunFailed as err:
        return _error(err, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
