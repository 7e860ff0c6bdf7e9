"""Agent scaling on MPE simple spread: where a PPO iteration's time goes as the agent count grows.

Independent quantum policies (configs/quantum_independent_spread.yaml: one 5-qubit, 3-layer
re-uploading circuit per agent, tanh(linear) encoder, classical critic) on ``rllib_quantum/simple_spread``
with N = 2, 4, 8, 16 agents, each N twice:

- ``stacked``    ``stack_modules: true``: StackedQuantumMultiRLModule, one circuit call for all agents
- ``unstacked``  ``stack_modules: false``: RLlib's MultiRLModule, one circuit call per agent
- ``classical``  configs/classical_independent_spread.yaml (RLlib's 64x64 MLPs), for reference

"Equal env steps": every run samples ``batch`` env steps per iteration
(``train_batch_size_per_learner``, counted in env steps), so the agent steps per iteration grow
as N x ``batch``, and every module trains on ``batch`` rows per epoch in minibatches of
``minibatch`` rows. The local env runner (``num_env_runners: 0``) samples in this process and the
local learner updates here too, so each part can be timed by wrapping it:

- env            the runner's vector env ``step`` and ``reset`` (mpe2 plus RLlib's PettingZoo wrapper),
                 on the very steps the runner sampled
- module fwd     the runner module's ``forward_exploration`` (one call per vector-env step, all agents)
- sampling overh ``env_runner.sample()`` minus env minus module fwd: RLlib's per-agent episode
                 bookkeeping and connector pipelines
- learner        ``learner_group.update()`` (split further in a second table)
- other          the rest of ``algo.train()``: weight sync to the runner, metrics
- package share  module fwd + learner: the time the policies' code can change
- gc             Python's garbage-collector pauses (``gc.callbacks``), printed beside the parts: they
                 fall inside whichever part runs when a collection starts

Every run (each N and variant) is built and given one warm-up iteration first; then the runs take
their ``iterations`` timed iterations in turns (one each per round, the order reversed every other
round), so that the shared machine speeding up or slowing down over the minutes of the benchmark
moves every run alike and the ratios compare iterations made side by side. Every timed iteration
must have trained every module. With ``--no-gc-freeze`` the collector's scans cover every run's
objects (they share this process), which slows the small runs more than their own objects would.
Ends with ratios and a plot. (RLlib's own ``result["timers"]`` are not used:
in Ray 2.60 they are exponential moving averages with coefficient 0.01, seeded by the first
iteration, so they report roughly the warm-up iteration for many iterations.)

    python benchmarks/agent_scaling.py [--agents 2 4 8 16] [--iterations 8] [--batch 800] [--no-classical] [--no-gc-freeze]
"""

from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from common import Stopwatch, parse_args, setup_torch, start_ray

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    agents: tuple = (2, 4, 8, 16)  # N: agents (and landmarks) per env
    iterations: int = 8  # timed iterations per run (after one warm-up); the defaults take about 5 minutes
    batch: int = 800  # env steps per iteration, the same for every N (agent steps: N x batch)
    minibatch: int = 200  # rows per module and minibatch
    epochs: int = 2
    num_envs_per_env_runner: int = 8  # 8 envs x 100 steps = 4 episodes of 25 steps each; 100 forward calls
    threads: int = 1  # torch threads (one, as in a runner actor; runner and learner share this process)
    classical: bool = True  # also time the classical config (reference)
    gc_freeze: bool = True  # the configs' gc_freeze (rllib_quantum.gc_freeze); --no-gc-freeze: Python's default collector
    plot: str = "docs/img/agent_scaling.png"  # "" for no plot
    seed: int = 0


def variants(args: Args) -> dict:
    common = {
        "ppo.train_batch_size_per_learner": args.batch,
        "ppo.minibatch_size": args.minibatch,
        "ppo.num_epochs": args.epochs,
        "env_runners.num_env_runners": 0,
        "env_runners.num_envs_per_env_runner": args.num_envs_per_env_runner,
        "seed": args.seed,
        "gc_freeze": args.gc_freeze,
    }
    quantum = ROOT / "configs" / "quantum_independent_spread.yaml"
    out = {
        "stacked": (quantum, {**common, "stack_modules": True}),
        "unstacked": (quantum, {**common, "stack_modules": False}),
    }
    if args.classical:
        out["classical"] = (ROOT / "configs" / "classical_independent_spread.yaml", common)
    return out


class GcPauses:
    """Seconds this process spends in Python's garbage collector (``gc.callbacks``), summed until
    :meth:`take`. The pauses fall inside whatever part runs (env, sampling, learner), so they are
    reported beside the parts, not as one of them."""

    def __init__(self):
        self.seconds, self._start = 0.0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


class TimedRun:
    """One built algorithm whose parts are timed by wrapping them on the live objects."""

    def __init__(self, config_path, overrides):
        from rllib_quantum.config import load_experiment

        self.exp = load_experiment(config_path, overrides)
        self.algo = self.exp.algo_config.build_algo()
        runner, learner = self.algo.env_runner, self.algo.learner_group._learner
        self.watch = watch = Stopwatch()
        watch.wrap(runner, "sample", "sampling")
        watch.wrap(runner.env, "step", "env")
        watch.wrap(runner.env, "reset", "env")
        watch.wrap(runner.module, "forward_exploration", "module_fwd")
        watch.wrap(self.algo.learner_group, "update", "learner")
        watch.wrap(learner.module, "forward_train", "l_forward")
        watch.wrap(learner, "compute_losses", "l_losses")
        watch.wrap(learner, "compute_gradients", "l_backward")
        watch.wrap(learner, "apply_gradients", "l_optimizer")
        self.rows = defaultdict(list)
        module = runner.module
        ids = list(self.exp.plan.module_ids)
        groups = len(module.stack_groups(ids)) if hasattr(module, "stack_groups") else len(ids)
        self.multi_module = f"{type(module).__name__}, {groups} call(s) per forward"

    def warm_up(self) -> None:
        """One untimed iteration: first torch calls, operator caches, episode buffers."""
        self.algo.train()
        self.watch.reset()

    def iteration(self, gc_pauses: "GcPauses") -> None:
        """One timed iteration, its parts appended to ``rows``."""
        gc_pauses.take()
        start = time.perf_counter()
        result = self.algo.train()
        total = time.perf_counter() - start
        trained = [result["learners"][m]["num_module_steps_trained"] for m in self.exp.plan.module_ids]
        if min(trained) <= 0:
            raise RuntimeError(f"an iteration trained nothing ({trained}): sampling timed out?")
        t, calls = self.watch.reset()
        if not calls.get("env") or not calls.get("module_fwd"):  # the runner rebuilt its env or module
            raise RuntimeError(f"a timed part was never called ({calls}): the timings would be wrong")
        rows = self.rows
        rows["total"].append(total)
        for key in ("env", "module_fwd", "learner", "l_forward", "l_losses", "l_backward", "l_optimizer"):
            rows[key].append(t.get(key, 0.0))
        rows["overhead"].append(t["sampling"] - t["env"] - t["module_fwd"])
        rows["other"].append(total - t["sampling"] - t["learner"])
        rows["l_rest"].append(t["learner"] - sum(t.get(k, 0.0) for k in ("l_forward", "l_losses", "l_backward", "l_optimizer")))
        rows["env_steps"].append(result["env_runners"]["num_env_steps_sampled"])
        rows["fwd_ms_per_call"].append(t["module_fwd"] / calls["module_fwd"] * 1e3)
        rows["gc"].append(gc_pauses.take())

    def summary(self) -> dict:
        out = {k: statistics.mean(v) for k, v in self.rows.items()}
        out["package"] = out["module_fwd"] + out["learner"]
        out["multi_module"] = self.multi_module
        return out


def plot(rows: dict, agents, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"stacked": "C0", "unstacked": "C1", "classical": "C2"}
    for variant, color in styles.items():
        if (agents[0], variant) not in rows:
            continue
        ax.plot(agents, [rows[n, variant]["package"] for n in agents], "o-", color=color,
                label=f"{variant}: package (module fwd + learner)")
    for variant, style in (("stacked", "s--"), ("unstacked", "^:")):
        ax.plot(agents, [rows[n, variant]["env"] for n in agents], style, color="0.4", label=f"env step/reset ({variant} run)")
    base = rows[agents[0], "stacked"]["package"]
    ax.plot(agents, [base * n / agents[0] for n in agents], "-", color="C0", alpha=0.25, lw=4,
            label="stacked package if linear in N")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(agents), [str(n) for n in agents])
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("agents N (equal env steps per iteration)")
    ax.set_ylabel("seconds per iteration")
    ax.set_title("simple spread, independent policies: time per PPO iteration")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    machine = setup_torch(args.threads, args.seed)
    ray = start_ray()
    print(f"{machine}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"settings: {dataclasses.asdict(args)}\n", flush=True)

    agents = tuple(args.agents)
    runs = {}
    for n in agents:  # every run built and warmed up first ...
        for variant, (path, overrides) in variants(args).items():
            runs[n, variant] = TimedRun(path, {**overrides, "env_config.N": n})
            runs[n, variant].warm_up()
    gc_pauses = GcPauses()
    for i in range(args.iterations):  # ... then one iteration of each in turns, so that a machine
        for key in (list(runs) if i % 2 == 0 else list(runs)[::-1]):  # slowing down or speeding up
            runs[key].iteration(gc_pauses)  # (a shared VM does) moves every run alike
        print(f"round {i + 1} of {args.iterations} done", flush=True)
    gc_pauses.close()
    rows = {}
    for (n, variant), run in runs.items():
        r = rows[n, variant] = run.summary()
        print(f"N={n:2d} {variant:9s} total {r['total']:6.2f} s  env {r['env']:5.2f}  module fwd {r['module_fwd']:5.2f}  "
              f"overhead {r['overhead']:5.2f}  learner {r['learner']:5.2f}  ({r['multi_module']}, "
              f"{r['fwd_ms_per_call']:.2f} ms each; {r['env_steps']:.0f} env steps/iter)", flush=True)
        run.algo.stop()
    ray.shutdown()

    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(f"\nseconds per iteration, mean of {args.iterations} (after 1 warm-up); {args.batch} env steps per iteration "
          f"(N x {args.batch} agent steps)\n")
    print("| N | variant | env | module fwd | sampling overhead | learner | other | total | package share (fwd + learner) "
          "| module fwd per call (ms) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (n, variant), r in rows.items():
        print(f"| {n} | {variant} | {r['env']:.3f} | {r['module_fwd']:.3f} | {r['overhead']:.3f} | {r['learner']:.3f} | "
              f"{r['other']:.3f} | {r['total']:.3f} | {r['package']:.3f} | {r['fwd_ms_per_call']:.2f} |")

    print("\nlearner update split (seconds per iteration): forward_train, compute_losses (incl. the critic), "
          "backward, optimizer step, rest (learner connectors incl. GAE, batching, metrics)\n")
    print("| N | variant | forward_train | losses | backward | optimizer | rest | learner |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (n, variant), r in rows.items():
        print(f"| {n} | {variant} | {r['l_forward']:.3f} | {r['l_losses']:.3f} | {r['l_backward']:.3f} | "
              f"{r['l_optimizer']:.3f} | {r['l_rest']:.3f} | {r['learner']:.3f} |")

    print("\nPython garbage collection, seconds per iteration (inside the parts above): " + ", ".join(
        f"N={n} {v} {r['gc']:.3f}" for (n, v), r in rows.items()))

    lo, hi = agents[0], agents[-1]
    grow = hi / lo
    names = [v for v in ("stacked", "unstacked", "classical") if (lo, v) in rows]
    print(f"\nratios N={hi} / N={lo} (linear in N would be {grow:.0f}x):")
    for v in names:
        a, b = rows[lo, v], rows[hi, v]
        target = "  (target <= 3x)" if v == "stacked" else ""
        print(f"  {v:9s} package share: {b['package'] / a['package']:5.2f}x{target}   "
              f"module fwd {b['module_fwd'] / a['module_fwd']:5.2f}x   learner {b['learner'] / a['learner']:5.2f}x   "
              f"total - env: {(b['total'] - b['env']) / (a['total'] - a['env']):5.2f}x   "
              f"RLlib sampling overhead: {b['overhead'] / a['overhead']:5.2f}x   env: {b['env'] / a['env']:5.2f}x")
    for v in names:
        per_agent_step = [rows[n, v]["overhead"] / (n * rows[n, v]["env_steps"]) * 1e6 for n in agents]
        print(f"  {v:9s} RLlib sampling overhead per agent step (us): " + ", ".join(
            f"N={n}: {u:.0f}" for n, u in zip(agents, per_agent_step)))
    print("  unstacked / stacked package share: " + ", ".join(
        f"N={n}: {rows[n, 'unstacked']['package'] / rows[n, 'stacked']['package']:.2f}" for n in agents))
    print("  stacked package share / total: " + ", ".join(
        f"N={n}: {rows[n, 'stacked']['package'] / rows[n, 'stacked']['total']:.0%}" for n in agents))

    if args.plot:
        path = ROOT / args.plot
        plot(rows, agents, path)
        print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
