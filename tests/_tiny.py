"""Overrides that make any pong features config tiny (seconds per iteration on 2 cores)."""

TINY = {
    "env_config.obs": "features",
    "env_config.max_cycles": 100,
    "ppo.train_batch_size_per_learner": 200,
    "ppo.minibatch_size": 100,
    "ppo.num_epochs": 1,
    "env_runners.num_env_runners": 0,
    "env_runners.num_envs_per_env_runner": 1,  # the configs' 16 envs would finish no episode in 200 steps
    "stop.training_iteration": 2,
}
TINY_QUANTUM = {**TINY, "model_config.circuit.n_qubits": 5, "model_config.circuit.n_layers": 1}
# Adam for every parameter of the quantum pong config, which ships natural-gradient steps for its
# actor: for tests that compare two float paths to float32 tolerance (the steps solve with the
# Fisher matrix, whose small eigenvalues amplify rounding) or assume lr-sized steps (the natural
# steps are KL-sized). tests/test_natural_gradient.py checks those steps themselves.
ADAM = {"model_config.natural_gradient": None}


def tiny(module_kind: str, **extra):
    """TINY overrides for ``module_kind`` ("quantum" or "classical") plus ``extra`` dotted keys."""
    return {**(TINY_QUANTUM if module_kind == "quantum" else TINY), **extra}


def swapped_gym_config(gym_id: str, n_qubits: int):
    """The usual RLlib multi-agent config on gymnasium's ``gym_id`` for 2 agents (RLlib's
    ``make_multi_agent``; ``policies={"p0", "p1"}`` with a ``policy_mapping_fn``, no module spec),
    tiny batches, local env runner, quantum policies swapped in with one call."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env import make_multi_agent
    from ray.tune.registry import register_env

    from rllib_quantum import with_quantum_policies

    name = f"rq_test_{gym_id}_x2"
    register_env(name, lambda cfg: make_multi_agent(gym_id)({"num_agents": 2}))
    config = (
        PPOConfig()
        .environment(name)
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *a, **k: f"p{aid}")
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
    )
    return with_quantum_policies(config, circuit={"n_qubits": n_qubits, "n_layers": 1})
