"""Learning curves from a Tune trial's results: per-agent mean episode return vs env steps."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

STEPS = "env_runners/num_env_steps_sampled_lifetime"
AGENT_RETURN_PREFIX = "env_runners/agent_episode_returns_mean/"
EPISODE_RETURN = "env_runners/episode_return_mean"
EVAL_RETURN_PREFIX = "evaluation/env_runners/agent_episode_returns_mean/"
EVAL_INTERVAL = "config/evaluation_interval"  # in a trial's result.json rows


def agent_return_columns(columns: Sequence[str]) -> Dict[str, str]:
    """``{agent_id: column}`` for the per-agent mean return columns of a progress table."""
    return {c[len(AGENT_RETURN_PREFIX):]: c for c in columns if c.startswith(AGENT_RETURN_PREFIX)}


def read_progress(path: Union[str, Path]):
    """A trial's results as a pandas DataFrame, one row per iteration, columns ``a/b/c``.

    From a trial folder, its ``result.json`` (every metric of every iteration); Tune's
    ``progress.csv`` keeps only the columns of the first iteration, so metrics that first appear
    later (periodic evaluation from iteration N on) are missing there. A ``.csv`` path, or a folder
    without ``result.json``, is read as ``progress.csv``.
    """
    import json

    import pandas as pd

    path = Path(path)
    if path.is_dir() and (path / "result.json").is_file():
        rows = [json.loads(line) for line in (path / "result.json").read_text().splitlines() if line.strip()]
        return pd.json_normalize(rows, sep="/")
    if path.is_dir():
        path = path / "progress.csv"
    return pd.read_csv(path)


def evaluation_rows(df):
    """The rows of ``df`` (:func:`read_progress` of a trial) in which RLlib ran a periodic
    evaluation: every ``evaluation_interval``-th iteration. RLlib repeats an evaluation's metrics
    in the following iteration's result, so the evaluation columns alone do not tell."""
    import pandas as pd

    if EVAL_INTERVAL not in df or "training_iteration" not in df:
        return df.index[:0]
    interval = pd.to_numeric(df[EVAL_INTERVAL], errors="coerce")
    evaluated = df[[c for c in df.columns if c.startswith(EVAL_RETURN_PREFIX)]].notna().any(axis=1)
    due = (interval > 0) & (df["training_iteration"] % interval.where(interval > 0, 1) == 0)
    return df.index[due & evaluated]


def first_passing(df, threshold: float, smooth: int = 5) -> Optional[Dict[str, float]]:
    """Where a run's training return first reaches ``threshold`` for every agent: each agent's
    per-iteration mean return smoothed by a rolling mean over ``smooth`` iterations (iterations
    without a finished episode skipped), the first iteration at which all agents' are at or above
    it, as ``{"iteration", "env_steps", "time_s"}`` (``time_s``: Tune's ``time_total_s``, training
    time); ``None`` if it never does.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"training_iteration": [1, 2, 3, 4], STEPS: [10, 20, 30, 40],
        ...     "time_total_s": [1.0, 2.0, 3.0, 4.0], AGENT_RETURN_PREFIX + "a": [0.0, 100.0, 100.0, 100.0],
        ...     AGENT_RETURN_PREFIX + "b": [0.0, float("nan"), 60.0, 100.0]})
        >>> first_passing(df, 50.0, smooth=2)
        {'iteration': 3, 'env_steps': 30, 'time_s': 3.0}
        >>> first_passing(df, 101.0) is None
        True
    """
    columns = list(agent_return_columns(df.columns).values())
    if not columns:
        return None
    smoothed = df[columns].rolling(smooth, min_periods=1).mean()
    passed = (smoothed >= threshold).all(axis=1)
    if not passed.any():
        return None
    row = df.loc[passed.idxmax()]
    return {"iteration": int(row["training_iteration"]), "env_steps": int(row[STEPS]), "time_s": round(float(row["time_total_s"]), 1)}


def _finish(fig, ax, out, title, levels, ylabel: str, legend_loc: str) -> Path:
    """Reference levels, labels, legend and title; writes the PNG to ``out`` and closes ``fig``."""
    import matplotlib.pyplot as plt

    for i, (name, value) in enumerate(sorted((levels or {}).items(), key=lambda kv: kv[1])):
        ax.axhline(value, color="grey", linestyle=":" if i == 0 else "--", linewidth=1)
        ax.annotate(f"{name} ({value:g})", (0.01, value), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(0, 3), fontsize=8, color="grey")
    ax.set_xlabel("env steps sampled")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc=legend_loc)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def curves_on_grid(runs: Sequence[object], column: str, smooth: int = 10, points: int = 100, label: str = "runs"):
    """``(grid, stack)``: each run's ``column`` against env steps, smoothed by a rolling mean over
    ``smooth`` iterations (iterations without a value skipped), interpolated onto ``points`` env-step
    values from 0 to the shortest run's last step; ``stack`` has one row per run that has a value
    (a run too short to finish an episode has none), none if no run has."""
    import numpy as np

    curves = []
    for run in runs:
        df = run if hasattr(run, "columns") else read_progress(run)
        if column not in df or STEPS not in df:
            raise ValueError(
                f"{label}: a run lacks column {column!r} or {STEPS!r}; it has {sorted(df.columns)[:10]}..."
            )
        y = df[column].rolling(smooth, min_periods=1).mean() if smooth > 1 else df[column]
        keep = y.notna()
        if keep.any():
            curves.append((df[STEPS][keep].to_numpy(float), y[keep].to_numpy(float)))
    grid = np.linspace(0.0, min((x[-1] for x, _ in curves), default=0.0), points)
    return grid, np.array([np.interp(grid, x, y) for x, y in curves]).reshape(len(curves), points)


def mean_curve_table(
    groups: Mapping[str, Sequence[object]], column: str, every: int = 50_000, smooth: int = 10, points: int = 1001
) -> str:
    """A markdown table of each group's mean curve (as :func:`plot_mean_curves` draws it) at every
    ``every`` env steps: the numbers behind the figure (``-`` past the end of a group's shortest run).

    Args:
        groups: ``{label: [DataFrame or trial folder, ...]}``.
        column: the metric, e.g. ``AGENT_RETURN_PREFIX + "paddle_0"``.
        every: env steps between columns.
        smooth, points: as :func:`plot_mean_curves` (the value at a step is the grid point nearest
            to it; ``points=1001`` puts grid points 0.1 % of the run apart).

    Example:
        >>> import pandas as pd
        >>> run = lambda a, b: pd.DataFrame({STEPS: [0, 100, 200], "r": [0.0, a, b]})
        >>> print(mean_curve_table({"q": [run(40, 60), run(20, 80)], "c": [run(10, 90)]}, "r", every=100, smooth=1))
        | mean curve | 100 | 200 |
        | --- | --- | --- |
        | q (2 runs) | 30.0 | 70.0 |
        | c (1 runs) | 10.0 | 90.0 |
        >>> print(mean_curve_table({"q": [run(40, 60)], "short": [run(10, 90)[:2]]}, "r", every=100, smooth=1))
        | mean curve | 100 | 200 |
        | --- | --- | --- |
        | q (1 runs) | 40.0 | 60.0 |
        | short (1 runs) | 10.0 | - |
    """
    import numpy as np

    rows, ends = [], []
    for label, runs in groups.items():
        grid, stack = curves_on_grid(runs, column, smooth, points, label)
        if len(stack):
            rows.append((f"{label} ({len(stack)} runs)", grid, stack.mean(0)))
            ends.append(grid[-1])
    if not rows:
        return "no run has a value of " + repr(column)
    marks = np.arange(every, max(ends) + 1, every)
    if not len(marks):
        return f"every run ends before {every} env steps"
    lines = ["| mean curve | " + " | ".join(f"{m:g}" if m < 1000 else f"{m / 1000:g}k" for m in marks) + " |",
             "|" + " --- |" * (len(marks) + 1)]
    for name, grid, mean in rows:
        cells = (f"{mean[np.abs(grid - m).argmin()]:.1f}" if m <= grid[-1] else "-" for m in marks)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_mean_curves(
    groups: Mapping[str, Sequence[object]],
    out: Union[str, Path],
    column: str,
    title: Optional[str] = None,
    smooth: int = 10,
    levels: Optional[Mapping[str, float]] = None,
    points: int = 100,
) -> Path:
    """Plots one mean curve per group of runs (e.g. one variant over several seeds), with the
    runs' range shaded: the picture for comparing variants, where :func:`plot_learning_curves`
    draws every run.

    Args:
        groups: ``{label: [DataFrame or trial folder, ...]}``.
        out: PNG path to write.
        column: the metric drawn, e.g. ``AGENT_RETURN_PREFIX + "paddle_0"``.
        title: figure title.
        smooth: each run is first smoothed by a rolling mean over this many iterations (iterations
            that finished no episode are skipped).
        levels: reference returns drawn as horizontal lines, e.g. ``{"random play": -3.7}``.
        points: each run is interpolated onto this many env-step values, from 0 to the shortest
            run's last step in its group, before the mean, minimum and maximum are taken.

    Example (two groups of two runs each):
        >>> import shutil, tempfile, pandas as pd
        >>> folder = Path(tempfile.mkdtemp())
        >>> run = lambda a, b: pd.DataFrame({STEPS: [0, 200, 400], "r": [0.0, a, b]})
        >>> out = plot_mean_curves({"quantum": [run(40, 55), run(30, 65)], "classical": [run(20, 90), run(50, 80)]},
        ...                        folder / "mean.png", column="r", smooth=1)
        >>> out.name, out.stat().st_size > 0
        ('mean.png', True)
        >>> shutil.rmtree(folder)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, runs in groups.items():
        grid, stack = curves_on_grid(runs, column, smooth, points, label)
        if not len(stack):
            continue
        label = f"{label}: mean of {len(stack)} runs (shaded: their range)"
        line = ax.plot(grid, stack.mean(0), linewidth=2, label=label)
        ax.fill_between(grid, stack.min(0), stack.max(0), color=line[0].get_color(), alpha=0.15)
    ylabel = "mean episode return per agent" + (f" (mean of {smooth} iterations)" if smooth > 1 else "")
    return _finish(fig, ax, out, title, levels, ylabel=ylabel, legend_loc="upper left")


def plot_learning_curves(
    runs: Mapping[str, object],
    out: Union[str, Path],
    title: Optional[str] = None,
    smooth: int = 1,
    levels: Optional[Mapping[str, float]] = None,
    final_evaluation: Optional[Mapping[str, tuple]] = None,
) -> Path:
    """Plots per-agent mean episode return against env steps for one or more runs.

    Args:
        runs: ``{label: DataFrame or trial folder}``; each run draws one line per agent.
        out: PNG path to write.
        title: figure title.
        smooth: if > 1, draw each curve as a rolling mean over this many iterations (iterations
            that finished no episode are skipped), over the raw per-iteration means drawn faintly.
        levels: reference returns drawn as horizontal lines, e.g. ``{"random play": -3.7}``.
        final_evaluation: ``{agent: (mean, ci95)}`` of the final policies' evaluation episodes,
            drawn as error bars at the last step (single-run plots).

    RLlib's periodic evaluation returns (``evaluation/...`` columns, present when the experiment
    has an ``evaluation`` section; greedy with ``evaluation_config: {explore: false}``) are drawn
    as markers on the same axes.

    Example (a trial folder's ``progress.csv``; here a two-row one written to a temp folder):
        >>> import shutil, tempfile, pandas as pd
        >>> trial = Path(tempfile.mkdtemp()) / "trial_0"; trial.mkdir()
        >>> pd.DataFrame({STEPS: [200, 400], AGENT_RETURN_PREFIX + "paddle_0": [40.0, 55.0],
        ...               AGENT_RETURN_PREFIX + "paddle_1": [40.0, 55.0]}).to_csv(trial / "progress.csv")
        >>> out = plot_learning_curves({"quantum": trial}, trial / "curve.png", smooth=10, levels={"random play": 28.6})
        >>> out.name, out.stat().st_size > 0
        ('curve.png', True)
        >>> shutil.rmtree(trial.parent)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, run in runs.items():
        df = run if hasattr(run, "columns") else read_progress(run)
        x = df[STEPS] if STEPS in df else df["training_iteration"]
        agents, evaluated_rows = agent_return_columns(df.columns), evaluation_rows(df)
        if not agents and EPISODE_RETURN in df:
            agents = {"all agents": EPISODE_RETURN}
        for agent, column in sorted(agents.items()):
            name = f"{label}: {agent}" if len(runs) > 1 else agent
            if smooth > 1:
                raw = ax.plot(x, df[column], alpha=0.25, linewidth=0.8)
                smoothed = df[column].rolling(smooth, min_periods=1).mean()
                ax.plot(x, smoothed, color=raw[0].get_color(), linewidth=2, label=f"{name} (mean of {smooth} iterations)")
            else:
                ax.plot(x, df[column], marker="o", markersize=3, label=name)
            evaluated = EVAL_RETURN_PREFIX + agent
            if evaluated in df and len(evaluated_rows):
                ax.plot(x[evaluated_rows], df[evaluated][evaluated_rows], "D", markersize=5, label=f"{name}: periodic evaluation")
    if final_evaluation:
        last_x = float(x.iloc[-1])
        for i, (agent, (mean, ci)) in enumerate(sorted(final_evaluation.items())):
            ax.errorbar([last_x * (1.01 + 0.02 * i)], [mean], yerr=[ci if ci == ci else 0.0], fmt="s", capsize=4,
                        label=f"{agent}: greedy evaluation of the final policy")
    return _finish(fig, ax, out, title, levels, ylabel="mean episode return per agent", legend_loc="center right")
