"""``benchmarks/learning.py``'s early-against-final analysis: its rank correlation against SciPy's,
and its table on runs whose correlation is known."""

import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from _helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import learning  # noqa: E402


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlation_equals_scipys_spearman_with_ties(seed):
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 6, size=12).astype(float)  # ties on purpose
    ys = xs + rng.normal(0, 2, size=12)
    assert learning.rank_correlation(list(xs), list(ys)) == pytest.approx(spearmanr(xs, ys).statistic, abs=1e-12)


def test_rank_correlation_of_a_constant_is_nan():
    assert np.isnan(learning.rank_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def _run(early: float, final: float) -> pd.DataFrame:
    """A run with one iteration at 200k steps (``early``), nan before it, and 10 final iterations."""
    steps = [50_000, 200_000] + list(range(400_000, 500_000, 10_000))
    values = [np.nan, early] + [final] * 10
    return pd.DataFrame({learning.STEPS: steps, learning.PER_PADDLE: values})


def test_early_and_final_table():
    """Group ``up``: the early order is the final order (1.0); ``down``: reversed (-1.0); runs
    without a value near a point are left out of its column (150k: none has one)."""
    frames = {
        "up": [_run(10, 50), _run(20, 60), _run(30, 70)],
        "down": [_run(10, 90), _run(20, 80), _run(30, 40)],
    }
    table = learning.early_and_final(frames, at=(150_000, 200_000), window=25_000).splitlines()
    assert table[0] == "| runs | n | 150k | 200k |"
    assert table[2] == "| up | 3 | - | 1.00 |"
    assert table[3] == "| down | 3 | - | -1.00 |"
    expected = spearmanr([10, 20, 30] * 2, [50, 60, 70, 90, 80, 40]).statistic
    assert table[4] == f"| all | 6 | - | {expected:.2f} |"


@pytest.mark.parametrize("variant", sorted(learning.VARIANTS))
def test_every_variant_builds_its_experiment_and_names_the_agent_it_scores(variant):
    """Each ``--variants`` name is a config that builds (no Ray) and is scored per paddle: the joint
    strategy's one agent halved, every other config's ``paddle_0``."""
    from rllib_quantum.config import build_experiment

    args = learning.Args(variants=(variant,))
    exp = build_experiment(*learning.variant_config(variant, args))
    expected = ("joint", 0.5) if exp.plan.strategy == "joint" else ("paddle_0", 1.0)
    assert learning.scored_agent(exp) == expected
    assert (exp.plan.strategy == "joint") == (variant == "quantum-joint")
