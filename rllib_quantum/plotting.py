"""Learning curves from Tune's ``progress.csv``: per-agent mean episode return vs env steps."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

STEPS = "env_runners/num_env_steps_sampled_lifetime"
AGENT_RETURN_PREFIX = "env_runners/agent_episode_returns_mean/"
EPISODE_RETURN = "env_runners/episode_return_mean"


def agent_return_columns(columns: Sequence[str]) -> Dict[str, str]:
    """``{agent_id: column}`` for the per-agent mean return columns of a progress table."""
    return {c[len(AGENT_RETURN_PREFIX):]: c for c in columns if c.startswith(AGENT_RETURN_PREFIX)}


def read_progress(path: Union[str, Path]):
    """Tune's ``progress.csv`` of a trial folder (or the file itself) as a pandas DataFrame."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "progress.csv"
    return pd.read_csv(path)


def plot_learning_curves(runs: Mapping[str, object], out: Union[str, Path], title: Optional[str] = None) -> Path:
    """Plots per-agent mean episode return against env steps for one or more runs.

    Args:
        runs: ``{label: DataFrame or trial folder}``; each run draws one line per agent.
        out: PNG path to write.
        title: figure title.

    Example:
        >>> plot_learning_curves({"quantum": "results/exp/trial_0"}, "curve.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in runs.items():
        df = run if hasattr(run, "columns") else read_progress(run)
        x = df[STEPS] if STEPS in df else df["training_iteration"]
        agents = agent_return_columns(df.columns)
        if not agents and EPISODE_RETURN in df:
            agents = {"all agents": EPISODE_RETURN}
        for agent, column in sorted(agents.items()):
            ax.plot(x, df[column], marker="o", markersize=3, label=f"{label}: {agent}" if len(runs) > 1 else agent)
    ax.set_xlabel("env steps sampled")
    ax.set_ylabel("mean episode return per agent")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
