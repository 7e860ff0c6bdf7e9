"""Driven by tests/test_cluster.py: the averaged strategy on a 2-node Ray cluster on this machine.

    python tests/cluster_run.py OUT.json

Starts ``ray.cluster_utils.Cluster``: a head node (1 CPU) and a second node that carries the
custom resource ``worker_node`` (the stand-in for a worker machine). Then, as README "Scaling out":

1. ``load_experiment(configs/quantum_averaged_pong_features.yaml)`` with the tiny overrides of
   tests/_tiny.py, 2 remote env runners that each ask for ``{"worker_node": 1}``, averaging
   every iteration; ``build_algo()`` on a driver connected to the cluster; train to the
   config's stop; record where every env runner ran and the module states on the learner and
   on every remote runner.
2. ``rllib-quantum train CONFIG --address auto --set env_runners.custom_resources_per_env_runner=...``
   (the CLI through Tune) against the same cluster.

Writes the facts as JSON to OUT.json; the test asserts on them. RAY_TMPDIR defaults to a private
folder: the cluster writes its address to $RAY_TMPDIR/ray/ray_current_cluster, which
``--address auto`` reads and any plain ``ray.init()`` on the machine would otherwise join.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIG = str(ROOT / "configs" / "quantum_averaged_pong_features.yaml")
MIDS = ["paddle_0", "paddle_1"]
CIRCUIT = ["actor.weights", "actor.input_scale", "actor.output_scale"]
RUNNER = {"worker_node": 1}


def _overrides():
    sys.path.insert(0, str(HERE))
    from _tiny import tiny

    return tiny("quantum", **{
        "env_runners.num_env_runners": 2,
        "env_runners.num_cpus_per_env_runner": 0.5,
        "env_runners.custom_resources_per_env_runner": RUNNER,
        "averaging.every": 1,
    })


def _states(module, keys=None):
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items() if keys is None or k in keys}


def _max_diff(a, b) -> float:
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _runner_report(runner):
    """Runs on each env runner: where it is, and its modules' states."""
    import socket

    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "assigned_resources": ray.get_runtime_context().get_assigned_resources(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "states": None if runner.module is None else {m: _states(runner.module[m]) for m in MIDS},
    }


def _env_runner_actor_nodes():
    """``[(class name, node id, state)]`` of every env runner actor the cluster ever ran (GCS actor table)."""
    import ray

    actors = ray._private.state.actors().values()
    return sorted((a["ActorClassName"], a["Address"]["NodeID"], a["State"]) for a in actors if "EnvRunner" in a["ActorClassName"])


def train_with_build_algo(out: dict, storage: str) -> None:
    import ray.tune.trainable.trainable as trainable

    from rllib_quantum import load_experiment

    exp = load_experiment(CONFIG, _overrides())
    trainable.DEFAULT_STORAGE_PATH = storage  # the Algorithm's log folder (outside Tune)
    algo = exp.algo_config.build_algo()
    try:
        start = time.perf_counter()
        for _ in range(exp.stop["training_iteration"]):
            result = algo.train()
        out["train_s"] = round(time.perf_counter() - start, 1)
        out["iterations"] = int(result["training_iteration"])
        out["stop_iterations"] = int(exp.stop["training_iteration"])
        out["averaging"] = result["parameter_averaging"]
        out["env_steps"] = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        reports = algo.env_runner_group.foreach_env_runner(_runner_report, local_env_runner=False)
        learner = [r.get() for r in algo.learner_group.foreach_learner(lambda l: {m: _states(l.module[m].unwrapped()) for m in MIDS})][0]
    finally:
        algo.stop()

    out["runner_nodes"] = [r["node_id"] for r in reports]
    out["runner_hostnames"] = [r["hostname"] for r in reports]
    out["runner_resources"] = [r["assigned_resources"] for r in reports]
    # Averaged params equal across the two policies on the learner and on every remote runner;
    # each runner's inference-only module equals the learner's; the critics stay per paddle.
    out["learner_circuit_gap"] = max(_max_diff(learner["paddle_0"][k], learner["paddle_1"][k]) for k in CIRCUIT)
    out["learner_critic_gap"] = _max_diff(learner["paddle_0"]["critic.0.weight"], learner["paddle_1"]["critic.0.weight"])
    out["runner_circuit_gaps"] = [
        max(_max_diff(r["states"]["paddle_0"][k], r["states"]["paddle_1"][k]) for k in CIRCUIT) for r in reports
    ]
    out["runner_vs_learner_gaps"] = [
        max(_max_diff(v, learner[m][k]) for m in MIDS for k, v in r["states"][m].items() if not k.startswith("critic."))
        for r in reports
    ]
    out["runner_keys"] = sorted(reports[0]["states"]["paddle_0"])


def train_with_cli(out: dict, storage: str) -> None:
    """The README recipe from a shell on the head node, in its own process (a fresh driver, as a
    user's would be): ``rllib-quantum train CONFIG --address auto --set env_runners.custom_resources_per_env_runner=...``."""
    import subprocess

    cli = Path(sys.executable).with_name("rllib-quantum")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "rllib_quantum.cli"]
    cmd += ["train", CONFIG, "--address", "auto", "--storage", storage, "--eval-episodes", "1"]
    for key, value in _overrides().items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]  # JSON is YAML: --set parses it
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400)
    out["cli_s"] = round(time.perf_counter() - start, 1)
    out["cli_rc"] = proc.returncode
    out["cli_summary"] = [line for line in proc.stdout.splitlines() if line.startswith(("SUMMARY", "EVALUATION"))]
    out["cli_progress"] = [str(p) for p in Path(storage).rglob("progress.csv")]
    if proc.returncode != 0:
        out["cli_output_tail"] = proc.stdout[-4000:]


def main(out_path: str) -> None:
    # The cluster writes its address to $RAY_TMPDIR/ray/ray_current_cluster, where `--address auto`
    # (and any plain ray.init() on this machine) looks: keep it in a folder of our own.
    if not os.environ.get("RAY_TMPDIR"):
        os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rqc-", dir="/tmp")
    import ray
    from ray.cluster_utils import Cluster

    from rllib_quantum import register_envs

    work = tempfile.mkdtemp(prefix="rq-cluster-")
    out: dict = {}
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2, resources={"worker_node": 2})
    out["cluster_start_s"] = round(time.perf_counter() - start, 1)
    out["head_node"], out["worker_node"] = cluster.head_node.node_id, worker.node_id
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        out["alive_nodes"] = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        out["driver_node"] = ray.get_runtime_context().get_node_id()
        out["worker_node_resources"] = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == worker.node_id)
        register_envs()
        train_with_build_algo(out, os.path.join(work, "algo"))
        out["env_runner_actors_build_algo"] = _env_runner_actor_nodes()
        ray.shutdown()

        train_with_cli(out, os.path.join(work, "results"))

        ray.init(address=cluster.address, log_to_driver=False)
        out["env_runner_actors"] = _env_runner_actor_nodes()
    finally:
        ray.shutdown()
        cluster.shutdown()
    out["total_s"] = round(time.perf_counter() - start, 1)
    Path(out_path).write_text(json.dumps(out, indent=1))
    print(f"CLUSTER RUN OK: {json.dumps({k: out[k] for k in ('runner_nodes', 'worker_node', 'cli_rc', 'total_s')})}")


if __name__ == "__main__":
    main(sys.argv[1])
