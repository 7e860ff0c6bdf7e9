"""A 2-node Ray cluster on this machine: env runners placed on the second node by a custom
resource; the averaged strategy trains to its stop, with ``build_algo()`` and with
``rllib-quantum train --address auto`` (README "Scaling out").

tests/cluster_run.py does the work in a subprocess: the cluster must not meet the session-wide
Ray instance of conftest (one ``ray.init`` per process), and its address file goes to a private
RAY_TMPDIR so no other ``ray.init()`` on the machine joins it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster_run():
    home = Path(tempfile.mkdtemp(prefix="rqc-", dir="/tmp"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    env.update(HOME=str(home), TMPDIR=str(home), RAY_TMPDIR=str(home), RAY_AUTH_MODE="disabled",
               PYTHONPATH=str(HERE.parent), PYTHONUNBUFFERED="1")
    out = home / "cluster_run.json"
    try:
        proc = subprocess.run([sys.executable, str(HERE / "cluster_run.py"), str(out)], cwd=HERE.parent, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=540)
        assert proc.returncode == 0, f"cluster_run.py exited {proc.returncode}:\n{proc.stdout[-6000:]}"
        assert "CLUSTER RUN OK" in proc.stdout
        facts = json.loads(out.read_text())
        facts["ray_results_in_home"] = (home / "ray_results").exists()
        yield facts
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_two_node_cluster_runners_on_worker_node_and_averaged_modules_synced(cluster_run):
    facts = cluster_run
    head, worker = facts["head_node"], facts["worker_node"]
    assert head != worker and facts["alive_nodes"] == sorted([head, worker])
    assert facts["driver_node"] == head and facts["worker_node_resources"]["worker_node"] == 2

    # build_algo(): both remote env runners ran on the second node, holding the custom resource.
    assert facts["runner_nodes"] == [worker, worker]
    assert all(r.get("worker_node") == 1 for r in facts["runner_resources"]), facts["runner_resources"]
    assert [n for _, n, _ in facts["env_runner_actors_build_algo"]] == [worker, worker]
    # Trained to the config's stop, averaging every iteration.
    assert facts["iterations"] == facts["stop_iterations"] == 2 and facts["env_steps"] == 400
    assert facts["averaging"]["rounds"] == 2 and facts["averaging"]["averaged"] == 1.0
    # Averaged (circuit) params equal across the two policies on the learner and on each remote
    # runner; each runner's module equals the learner's; the critics were not averaged.
    assert facts["learner_circuit_gap"] == 0.0
    assert facts["runner_circuit_gaps"] == [0.0, 0.0]
    assert facts["runner_vs_learner_gaps"] == [0.0, 0.0]
    assert {"actor.weights", "actor.input_scale", "actor.output_scale"} <= set(facts["runner_keys"])
    assert facts["learner_critic_gap"] > 0

    # rllib-quantum train CONFIG --address auto: finished through Tune, runners on the second node too.
    assert facts["cli_rc"] == 0, facts.get("cli_output_tail")
    assert any(line.startswith("SUMMARY quantum-averaged-pong-features: 2 iterations, 400 env steps")
               for line in facts["cli_summary"]), facts["cli_summary"]
    assert len(facts["cli_progress"]) == 1
    runners = [n for cls, n, _ in facts["env_runner_actors"] if cls == "MultiAgentEnvRunner"]
    assert len(runners) == 4 and set(runners) == {worker}  # 2 from build_algo() + 2 from the Tune trial
    assert not facts["ray_results_in_home"]
