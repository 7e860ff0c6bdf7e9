"""Quantum policies for PettingZoo's SISL pursuit, swapped into a plain RLlib multi-agent config.

Pursuers chase evaders on a grid; each sees a 7x7x3 patch around itself (a small image:
walls, pursuers, evaders) and moves with ``Discrete(5)``. The config below is what an RLlib user
writes for a PettingZoo env: ``register_env`` with RLlib's ``ParallelPettingZooEnv`` wrapper,
``.multi_agent(policies=..., policy_mapping_fn=...)`` with one policy per pursuer, and no
``rl_module_spec`` (RLlib's default modules). One call, ``with_quantum_policies``, makes a copy
with a ``QuantumPPORLModule`` per pursuer: a small CNN (chosen for the 7x7 frame) -> tanh(linear)
-> the circuit's 5 wires -> one logit per action.

Run:  python examples/swap_in_sisl_pursuit.py [--iterations 5 --n-pursuers 4 ...]
(every ``Args`` field is a flag; ``--help`` lists them). The CI-sized run (tests/test_examples.py):

    python examples/swap_in_sisl_pursuit.py --iterations 1 --n-pursuers 2 --max-cycles 25 \
        --train-batch-size-per-learner 200 --minibatch-size 100 --num-epochs 1 --num-env-runners 0 --n-layers 1

The Algorithm's own log folder goes under ``--storage`` (default ``results/``), not ``~/ray_results``.
"""

import dataclasses
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@dataclasses.dataclass
class Args:
    iterations: int = 2                 # training iterations to run
    n_pursuers: int = 4                 # agents (pursuer_0 ...), one policy each
    n_evaders: int = 8
    grid_size: int = 10                 # the world is grid_size x grid_size cells (pursuit's default: 16)
    max_cycles: int = 100               # steps per episode (pursuit's default: 500)
    lr: float = 0.001
    train_batch_size_per_learner: int = 1000
    minibatch_size: int = 250
    num_epochs: int = 2
    num_env_runners: int = 1
    n_qubits: int = 5                   # one read-out wire per action
    n_layers: int = 2
    storage: str = "results"            # the Algorithm's log folder goes under STORAGE/examples/
    num_cpus: int = 2                   # CPUs of the local Ray instance


from rllib_quantum.script_args import parse_args  # noqa: E402

args = parse_args(Args, description=__doc__)  # Args() with the command line's flags applied

import ray  # noqa: E402
import ray.tune.trainable.trainable as trainable  # noqa: E402
from pettingzoo.sisl import pursuit_v5  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402

from rllib_quantum import reproducible_runtime_env, with_quantum_policies  # noqa: E402
from rllib_quantum.script_report import describe_modules, train_and_report  # noqa: E402


# ---- 1. an RLlib-style config, as you would write it without this package -------------------
def env_creator(env_config):
    return ParallelPettingZooEnv(pursuit_v5.parallel_env(**env_config))


register_env("pursuit", env_creator)
pursuers = [f"pursuer_{i}" for i in range(args.n_pursuers)]
config = (
    PPOConfig()
    .environment("pursuit", env_config={
        "n_pursuers": args.n_pursuers, "n_evaders": args.n_evaders, "max_cycles": args.max_cycles,
        "x_size": args.grid_size, "y_size": args.grid_size,
    })
    .env_runners(num_env_runners=args.num_env_runners)
    .multi_agent(policies=set(pursuers), policy_mapping_fn=(lambda agent_id, episode, **kw: agent_id))
    .training(
        lr=args.lr,
        train_batch_size_per_learner=args.train_batch_size_per_learner,
        minibatch_size=args.minibatch_size,
        num_epochs=args.num_epochs,
    )
)

# ---- 2. the swap: a copy with a QuantumPPORLModule per pursuer ------------------------------
quantum_config = with_quantum_policies(
    config,
    circuit={"n_qubits": args.n_qubits, "n_layers": args.n_layers},
    critic_hiddens=[32, 32],
)

# ---- 3. train and print what each policy did -------------------------------------------------
# An Algorithm built outside Tune makes its log folder under ray's DEFAULT_STORAGE_PATH
# (~/ray_results, fixed at import): point it into our results folder first.
trainable.DEFAULT_STORAGE_PATH = os.path.abspath(os.path.join(args.storage, "examples", "swap-in-sisl-pursuit"))
# one PYTHONHASHSEED for every Ray worker (README "Reproducibility"; this process keeps its own)
ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
         runtime_env=reproducible_runtime_env())
algo = quantum_config.build_algo()
print(f"algorithm logs: {algo.logdir}")
describe_modules(algo, pursuers)
train_and_report(algo, pursuers, args.iterations, "pursuit")
algo.stop()
ray.shutdown()
