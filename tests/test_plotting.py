"""Mean learning curves over several runs (``curves_on_grid``, ``plot_mean_curves``, ``mean_curve_table``):
exact small cases."""

import numpy as np
import pandas as pd
import pytest

from rllib_quantum.plotting import STEPS, curves_on_grid, mean_curve_table, plot_mean_curves


def run(steps, values):
    return pd.DataFrame({STEPS: steps, "r": values})


def test_runs_are_interpolated_onto_one_grid_up_to_the_shortest_run():
    a = run([0, 100, 200], [0.0, 10.0, 20.0])
    b = run([0, 50, 100, 150], [10.0, 10.0, 30.0, 99.0])  # shorter: the grid ends at 150
    grid, stack = curves_on_grid([a, b], "r", smooth=1, points=4)
    np.testing.assert_allclose(grid, [0, 50, 100, 150])
    np.testing.assert_allclose(stack, [[0, 5, 10, 15], [10, 10, 30, 99]])


def test_smoothing_is_a_rolling_mean_over_iterations_and_skips_iterations_without_episodes():
    a = run([0, 100, 200, 300], [0.0, np.nan, 30.0, 60.0])
    grid, stack = curves_on_grid([a], "r", smooth=2, points=4)
    # rolling means over 2 iterations: 0, 0 (the nan is skipped, the row keeps the mean of the rest), 30, 45
    np.testing.assert_allclose(grid, [0, 100, 200, 300])
    np.testing.assert_allclose(stack[0], [0, 0, 30, 45])


def test_runs_without_any_value_are_left_out():
    grid, stack = curves_on_grid([run([0, 100], [np.nan, np.nan]), run([0, 100], [1.0, 3.0])], "r", smooth=1, points=3)
    np.testing.assert_allclose(stack, [[1, 2, 3]])
    assert curves_on_grid([run([0, 100], [np.nan, np.nan])], "r", smooth=1, points=3)[1].shape == (0, 3)


def test_a_missing_column_names_the_group_and_the_column(tmp_path):
    with pytest.raises(ValueError, match="classical: a run lacks column 'paddle'"):
        plot_mean_curves({"classical": [run([0, 1], [0.0, 1.0])]}, tmp_path / "x.png", column="paddle")


def test_plot_writes_a_png(tmp_path):
    out = plot_mean_curves({"q": [run([0, 10], [0.0, 1.0])] * 2, "c": [run([0, 10], [1.0, 2.0])]},
                           tmp_path / "m.png", column="r", smooth=1, levels={"random": 0.0})
    assert out.stat().st_size > 1000


def test_mean_curve_table_reads_each_groups_mean_at_the_marks_until_the_group_ends():
    long = [run([0, 100, 200, 300], [0.0, 10.0, 20.0, 30.0]), run([0, 100, 200, 300], [0.0, 30.0, 40.0, 50.0])]
    short = [run([0, 100, 200], [5.0, 5.0, np.nan])]  # its last iteration finished no episode
    table = mean_curve_table({"long": long, "short": short}, "r", every=50, smooth=1, points=301)
    assert table.splitlines() == [
        "| mean curve | 50 | 100 | 150 | 200 | 250 | 300 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| long (2 runs) | 10.0 | 20.0 | 25.0 | 30.0 | 35.0 | 40.0 |",
        "| short (1 runs) | 5.0 | 5.0 | - | - | - | - |",  # its values end at 100
    ]
    assert mean_curve_table({"long": long}, "r", every=500, smooth=1) == "every run ends before 500 env steps"
    assert mean_curve_table({"none": [run([0, 100], [np.nan, np.nan])]}, "r", smooth=1) == "no run has a value of 'r'"
