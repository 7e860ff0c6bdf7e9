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


def tiny(module_kind: str, **extra):
    """TINY overrides for ``module_kind`` ("quantum" or "classical") plus ``extra`` dotted keys."""
    return {**(TINY_QUANTUM if module_kind == "quantum" else TINY), **extra}
