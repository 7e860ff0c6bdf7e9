"""Quantum policies with continuous actions for MPE simple spread, swapped into a plain RLlib config.

``N`` agents must cover ``N`` landmarks (mpe2's ``simple_spread_v3``) without colliding. With
``continuous_actions=True`` each agent's action is a ``Box(0, 1, (5,))`` of forces, so each
quantum policy is a diagonal Gaussian: its means are the circuit's read-outs, its log-stds learned
parameters; RLlib maps the samples from [-1, 1] onto [0, 1] (``normalize_actions``). Each agent
sees ``6 * N`` numbers, mapped onto the circuit's wires by a tanh(linear) encoder.

The config is what an RLlib user writes for a PettingZoo env: the env registered under the user's
own name with ``register_env`` and RLlib's ``ParallelPettingZooEnv`` wrapper (not the package's
``rllib_quantum/simple_spread``), ``.multi_agent(policies=..., policy_mapping_fn=...)`` with one
policy per agent, and no ``rl_module_spec``. ``with_quantum_policies`` makes the quantum copy.

Run:  python examples/swap_in_simple_spread.py [--iterations 5 --n-agents 3 ...]
(every ``Args`` field is a flag; ``--help`` lists them). The CI-sized run (tests/test_examples.py):

    python examples/swap_in_simple_spread.py --iterations 2 --train-batch-size-per-learner 200 \
        --minibatch-size 100 --num-epochs 1 --num-env-runners 0 --n-layers 1

The Algorithm's own log folder goes under ``--storage`` (default ``results/``), not ``~/ray_results``.
"""

import dataclasses
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@dataclasses.dataclass
class Args:
    iterations: int = 2                 # training iterations to run
    n_agents: int = 2                   # agents and landmarks (mpe2's N)
    max_cycles: int = 25                # steps per episode (mpe2's default)
    lr: float = 0.001
    train_batch_size_per_learner: int = 1000
    minibatch_size: int = 250
    num_epochs: int = 2
    num_env_runners: int = 1
    n_qubits: int = 5                   # one read-out wire per action dimension (5 forces)
    n_layers: int = 2
    storage: str = "results"            # the Algorithm's log folder goes under STORAGE/examples/
    num_cpus: int = 2                   # CPUs of the local Ray instance


from rllib_quantum.script_args import parse_args  # noqa: E402

args = parse_args(Args, description=__doc__)  # Args() with the command line's flags applied

import ray  # noqa: E402
import ray.tune.trainable.trainable as trainable  # noqa: E402
from mpe2 import simple_spread_v3  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402

from rllib_quantum import reproducible_runtime_env, with_quantum_policies  # noqa: E402
from rllib_quantum.script_report import describe_modules, train_and_report  # noqa: E402


# ---- 1. an RLlib-style config, as you would write it without this package -------------------
def env_creator(env_config):
    return ParallelPettingZooEnv(simple_spread_v3.parallel_env(**env_config))


register_env("my_simple_spread", env_creator)
agents = [f"agent_{i}" for i in range(args.n_agents)]
config = (
    PPOConfig()
    .environment("my_simple_spread", env_config={
        "N": args.n_agents, "max_cycles": args.max_cycles, "continuous_actions": True,
    })
    .env_runners(num_env_runners=args.num_env_runners)
    .multi_agent(policies=set(agents), policy_mapping_fn=(lambda agent_id, episode, **kw: agent_id))
    .training(
        lr=args.lr,
        train_batch_size_per_learner=args.train_batch_size_per_learner,
        minibatch_size=args.minibatch_size,
        num_epochs=args.num_epochs,
    )
)

# ---- 2. the swap: a copy with a QuantumPPORLModule (Gaussian head) per agent ----------------
quantum_config = with_quantum_policies(
    config,
    circuit={"n_qubits": args.n_qubits, "n_layers": args.n_layers},
    critic_hiddens=[32, 32],
)

# ---- 3. train and print what each policy did -------------------------------------------------
# An Algorithm built outside Tune makes its log folder under ray's DEFAULT_STORAGE_PATH
# (~/ray_results, fixed at import): point it into our results folder first.
trainable.DEFAULT_STORAGE_PATH = os.path.abspath(os.path.join(args.storage, "examples", "swap-in-simple-spread"))
# one PYTHONHASHSEED for every Ray worker (README "Reproducibility"; this process keeps its own)
ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
         runtime_env=reproducible_runtime_env())
algo = quantum_config.build_algo()
print(f"algorithm logs: {algo.logdir}")
describe_modules(algo, agents)
train_and_report(algo, agents, args.iterations, "simple spread (continuous actions)")
algo.stop()
ray.shutdown()
