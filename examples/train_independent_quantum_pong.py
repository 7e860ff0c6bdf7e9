"""MADQRL in a page: independent quantum policies per paddle on cooperative pong, via RLlib PPO.

What ``rllib-quantum train configs/quantum_independent_pong_features.yaml`` does, spelled out with
the Python API and a plain ``algo.train()`` loop (no Tune). Arguments live in ``Args``, each one
also a flag (``--help`` lists them); ``--set`` overrides any config key as ``rllib-quantum`` does:

    python examples/train_independent_quantum_pong.py [--iterations 20 --set ppo.lr=0.005 ...]

The CI-sized run (seconds; tests/test_examples.py passes the overrides of tests/_tiny.py):

    python examples/train_independent_quantum_pong.py --iterations 1 --n-layers 1 --eval-episodes 1 \
        --set env_config.max_cycles=100 ppo.train_batch_size_per_learner=200 ppo.minibatch_size=100 \
        ppo.num_epochs=1 env_runners.num_env_runners=0 env_runners.num_envs_per_env_runner=1

The Algorithm's own log folder goes under ``--storage`` (default ``results/``), not ``~/ray_results``.
"""

import dataclasses
import os
import time

import ray
import ray.tune.trainable.trainable as trainable

from rllib_quantum import evaluate_modules, load_experiment, register_envs, reproducible_runtime_env
from rllib_quantum.config import parse_overrides
from rllib_quantum.evaluation import learner_modules
from rllib_quantum.script_args import parse_args


@dataclasses.dataclass
class Args:
    config: str = "configs/quantum_independent_pong_features.yaml"
    iterations: int = 20  # x 8000 env steps (the config's batch); the config's own budget is 63
    n_qubits: int = 5  # one wire per feature: ball x, y, vx, vy, own paddle y
    n_layers: int = 4
    lr: float = 0.01
    eval_episodes: int = 10  # greedy episodes on fresh env seeds after training
    set: tuple = ()  # more config overrides, KEY=VALUE (dotted key, YAML value) as in rllib-quantum --set
    storage: str = "results"  # the Algorithm's log folder goes under STORAGE/examples/
    num_cpus: int = 2  # CPUs of the local Ray instance


args = parse_args(Args, description=__doc__)  # Args() with the command line's flags applied

# 1. The YAML experiment, with a few keys overridden the same way `--set` does.
exp = load_experiment(
    args.config,
    overrides={
        "model_config.circuit.n_qubits": args.n_qubits,
        "model_config.circuit.n_layers": args.n_layers,
        "ppo.lr": args.lr,
        **parse_overrides(args.set),
    },
)
print(f"modules: {exp.plan.agents_of_module}")  # {'paddle_0': ['paddle_0'], 'paddle_1': ['paddle_1']}
for module_id, module in exp.build_modules().items():
    print(f"{module_id}: {module.parameter_counts()}")

# 2. Ray, the env registration (per Ray session), and RLlib's PPO with our modules. An Algorithm
#    built outside Tune makes its log folder under ray's DEFAULT_STORAGE_PATH (~/ray_results,
#    fixed at import): point it into our results folder first.
trainable.DEFAULT_STORAGE_PATH = os.path.abspath(os.path.join(args.storage, "examples", exp.name))
# one PYTHONHASHSEED for every Ray worker (README "Reproducibility"; this process keeps its own)
ray.init(num_cpus=args.num_cpus, include_dashboard=False,
         runtime_env=reproducible_runtime_env())
register_envs()
algo = exp.algo_config.build_algo()
print(f"algorithm logs: {algo.logdir}")

# 3. Train: each paddle's policy learns from its own experience only.
start = time.perf_counter()
for i in range(1, args.iterations + 1):
    result = algo.train()
    runners = result["env_runners"]
    returns = {a: round(float(r), 2) for a, r in (runners.get("agent_episode_returns_mean") or {}).items()}
    print(f"iter {i:3d}  env steps {int(runners['num_env_steps_sampled_lifetime']):7d}  mean return {returns}")
print(f"{args.iterations} iterations in {time.perf_counter() - start:.1f} s")

# 4. Judge the policies by separate greedy episodes on fresh seeds, not by the training mean.
print(evaluate_modules(exp, learner_modules(exp, algo), episodes=args.eval_episodes, greedy=True).summary())

algo.stop()
ray.shutdown()
