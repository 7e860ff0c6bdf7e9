"""Swap quantum policies into an RLlib multi-agent PPO config this package did not write.

The config below is written the way RLlib's own
``rllib/examples/multi_agent/pettingzoo_independent_learning.py`` writes one: one default
``RLModuleSpec()`` per agent, ``policy_mapping_fn: agent_id -> agent_id``. One call,
``with_quantum_policies``, turns a copy of it into variational-quantum-circuit policies; the env,
spaces, mapping and PPO settings stay as they were.

Run:  python examples/swap_in_quantum_policies.py [--iterations 2 --n-layers 2 ...]
(every ``Args`` field is a flag; ``--help`` lists them). The CI-sized run:

    python examples/swap_in_quantum_policies.py --iterations 1 --max-cycles 100 \
        --train-batch-size-per-learner 200 --minibatch-size 100 --num-epochs 1 --num-env-runners 0 --n-layers 1
"""

import dataclasses
import os
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@dataclasses.dataclass
class Args:
    iterations: int = 2                 # training iterations to run
    max_cycles: int = 300               # pong frames per episode
    lr: float = 0.003
    train_batch_size_per_learner: int = 1000
    minibatch_size: int = 250
    num_epochs: int = 2
    num_env_runners: int = 1
    n_qubits: int = 5                   # one wire per feature (ball x, y, vx, vy, own paddle y)
    n_layers: int = 2
    swap_modules: tuple = ("paddle_0", "paddle_1")  # which policies become quantum


from rllib_quantum.script_args import parse_args  # noqa: E402

args = parse_args(Args, description=__doc__)  # Args() with the command line's flags applied

import ray  # noqa: E402
import ray.tune.trainable.trainable as trainable  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402

from rllib_quantum import reproducible_runtime_env  # noqa: E402
from rllib_quantum.envs import COOPERATIVE_PONG, register_envs  # noqa: E402
from rllib_quantum.swap import with_quantum_policies  # noqa: E402

# ---- 1. an RLlib-style config, as you would write it without this package -------------------
register_envs()
policies = {"paddle_0", "paddle_1"}
config = (
    PPOConfig()
    .environment(COOPERATIVE_PONG, env_config={"obs": "features", "max_cycles": args.max_cycles})
    .env_runners(num_env_runners=args.num_env_runners)
    .multi_agent(policies=policies, policy_mapping_fn=(lambda agent_id, episode, **kw: agent_id))
    .training(
        lr=args.lr,
        train_batch_size_per_learner=args.train_batch_size_per_learner,
        minibatch_size=args.minibatch_size,
        num_epochs=args.num_epochs,
    )
    .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={p: RLModuleSpec() for p in policies}))
)

# ---- 2. the swap: a copy with QuantumPPORLModule for the chosen modules ---------------------
quantum_config = with_quantum_policies(
    config,
    modules=list(args.swap_modules),
    circuit={"n_qubits": args.n_qubits, "n_layers": args.n_layers},
    critic_hiddens=[32, 32],
)
for mid, spec in quantum_config.rl_module_spec.rl_module_specs.items():
    print(f"{mid}: {spec.module_class.__name__}")

# ---- 3. train and print the returns ----------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="rq-example-")
trainable.DEFAULT_STORAGE_PATH = tmp  # keep logs out of ~/ray_results
# one PYTHONHASHSEED for every Ray worker (README "Reproducibility"; this process keeps its own)
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False,
         runtime_env=reproducible_runtime_env())
register_envs()  # Ray forgets registrations made before init on some paths; harmless twice
algo = quantum_config.build_algo()
for i in range(1, args.iterations + 1):
    result = algo.train()
    returns = result["env_runners"].get("agent_episode_returns_mean", {})
    pretty = ", ".join(f"{a}: {r:6.2f}" for a, r in sorted(returns.items()))
    print(f"iteration {i}: env steps {int(result['env_runners']['num_env_steps_sampled_lifetime']):6d}  "
          f"mean return per agent  {pretty or 'no episode finished yet'}")
algo.stop()
ray.shutdown()
