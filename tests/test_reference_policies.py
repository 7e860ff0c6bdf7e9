"""``benchmarks/reference_policies.py``: scripted pong policies against the real game, with noise."""

import re
import sys

from _helpers import ROOT, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import reference_policies  # noqa: E402


def test_the_deciding_window_is_the_last_ten_steps():
    """Holding the centre and tracking only within 10 steps of arrival keeps every rally alive on
    these seeds (the tracker's ceiling); within 5 steps it misses: the window is real, not a default."""
    seeds = [1000000, 1000001]
    assert reference_policies.play(reference_policies.centre_then_track(10), seeds)[0] == reference_policies.play(
        reference_policies.tracker, seeds)[0]
    late = reference_policies.play(reference_policies.centre_then_track(5), seeds)
    assert late[0] < 50 and late[2] < 900, late


def test_noise_lands_only_where_asked():
    """A random action in 30 % of the steps outside the deciding window leaves the tracker at the
    ceiling (those steps do not decide a miss); random play inside it loses rallies."""
    seeds = [1000000, 1000001]
    assert reference_policies.play(reference_policies.tracker, seeds, 0.3, "elsewhere")[0] > 99.9
    assert reference_policies.play(reference_policies.tracker, seeds, 1.0, "deciding")[0] < 50


def test_script_prints_both_tables(tmp_path):
    out = run_script("benchmarks/reference_policies.py", ["--episodes", "2", "--eps", "0.1", "--centre-after", "10"],
                     tmp_path, timeout=180)
    assert re.search(r"^\| tracker \| 100\.0 \+- 0\.0 \(900\) \|$", out, re.M), out
    assert re.search(r"^\| centre, then track within 10 steps of arrival \| 100\.0 \+- 0\.0 \(900\) \|$", out, re.M), out
    rows = re.findall(r"^\| (tracker|intercept) \| 0\.1 \| (.+) \|$", out, re.M)
    assert [name for name, _ in rows] == ["tracker", "intercept"], out
    assert all(len(cells.split(" | ")) == 3 for _, cells in rows), out
