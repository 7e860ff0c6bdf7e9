"""Numerical safety: a nan or inf stops the run with a ``FloatingPointError`` that names the module.

:class:`~rllib_quantum.modules.QuantumPPORLModule` checks observations and outputs in every forward
pass; :class:`~rllib_quantum.learners.QuantumPPOTorchLearner` checks each loss before ``backward()``
and the parameters after every optimizer step. Raised in the process that trains (a local env
runner, the learner, a Tune trial), the error reaches the caller of ``algo.train()`` (and Tune's
trial error) as it is.

Raised inside a *remote* env runner it would not: RLlib's fault tolerance catches every exception
of a runner's ``sample()``, logs it on the worker, ends the runner and (``restart_failed_env_runners``,
on by default) restarts it, and training goes on. So the module first reports its message here, in
Ray's key-value store under the run's scope (the placement group of the Tune trial, else the Ray
job), and the learner raises it at the start of its next update: the run stops with the runner's
own message. The learner clears the scope when it is built.
"""

from __future__ import annotations

from typing import Optional

_PREFIX = "rllib_quantum:non_finite:"


def _scope_key() -> Optional[bytes]:
    """The key of this run's report, or ``None`` outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        ctx = ray.get_runtime_context()
        scope = ctx.get_placement_group_id() or f"job-{ctx.get_job_id()}"
        return f"{_PREFIX}{scope}".encode()
    except Exception:  # never let the safety net itself fail a run
        return None


def in_remote_actor() -> bool:
    """True inside a Ray actor (a remote env runner or learner, a Tune trial), False in a driver."""
    try:
        import ray

        return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None
    except Exception:
        return False


def report(message: str) -> None:
    """Leaves ``message`` for this run's learner (the first report of a run wins); best effort."""
    key = _scope_key()
    if key is None:
        return
    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(key, message.encode(), overwrite=False)
    except Exception:
        pass


def reported() -> Optional[str]:
    """The message a module of this run reported, if any."""
    key = _scope_key()
    if key is None:
        return None
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        value = _internal_kv_get(key)
    except Exception:
        return None
    return value.decode() if value else None


def clear() -> None:
    """Forgets this run's report (a learner being built starts clean)."""
    key = _scope_key()
    if key is None:
        return
    try:
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(key)
    except Exception:
        pass


class RemoteRunnerError(RuntimeError):
    """An env runner's own error (its env or module raised), re-raised in the process that trains."""


ENV_ERROR = "env error: "
MODULE_ERROR = "module error: "


def raise_if_reported() -> None:
    """Re-raises what a remote env runner of this run reported: ``FloatingPointError`` for a nan/inf,
    :class:`RemoteRunnerError` for an exception of its env or of a module's forward pass."""
    message = reported()
    for prefix, source in ((ENV_ERROR, "the env"), (MODULE_ERROR, "a module")):
        if message and message.startswith(prefix):
            raise RemoteRunnerError(
                f"{message[len(prefix):]} (raised by {source} on a remote env runner, which RLlib ended; the run stops here)"
            )
    if message:
        raise FloatingPointError(f"{message} (on a remote env runner, which RLlib ended; the run stops here)")


def describe(err: BaseException) -> str:
    """``Type: first line of the message``: how a worker's error is reported."""
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def report_errors(env):
    """Makes ``env``'s ``reset``/``step`` report their exceptions (then raise them as before) when
    they run on a remote env runner, so that the run stops with the env's own error instead of
    RLlib restarting the runner and training on without it. The package's env creators use it;
    wrap your own env the same way. Returns ``env`` (changed in place).

    Example:
        >>> from rllib_quantum.envs import make_cooperative_pong
        >>> env = report_errors(make_cooperative_pong({"max_cycles": 10}))
        >>> obs, infos = env.reset(seed=0)
        >>> sorted(obs)
        ['paddle_0', 'paddle_1']
    """
    for name in ("reset", "step"):
        method = getattr(env, name)

        def reporting(*args, _method=method, _name=name, **kwargs):
            try:
                return _method(*args, **kwargs)
            except Exception as err:
                if in_remote_actor():
                    report(f"{ENV_ERROR}{describe(err)} (in env.{_name})")
                raise

        setattr(env, name, reporting)
    return env


def raise_on_report(*, algorithm=None, result=None, **kwargs) -> None:
    """An ``on_train_result`` callback: stops the run when a remote env runner reported a nan/inf
    or an env error.

    Needed besides the learner's check: when every remote runner fails, PPO gets no samples and
    skips the update, so the learner never looks.
    """
    raise_if_reported()


def clear_on_init(*, algorithm=None, **kwargs) -> None:
    """An ``on_algorithm_init`` callback: a report left by an earlier run in this scope is not ours."""
    clear()


def add_callback(config, event: str, function) -> None:
    """Appends ``function`` to ``config``'s ``event`` callbacks (RLlib's callables API), keeping the
    ones already there; adding one twice adds it once."""
    existing = getattr(config, f"callbacks_{event}")
    functions = [] if existing is None else list(existing) if isinstance(existing, (list, tuple)) else [existing]
    if function not in functions:
        config.callbacks(**{event: functions + [function]})


def install(config):
    """Adds :func:`clear_on_init` and :func:`raise_on_report` to ``config``'s ``on_algorithm_init``
    and ``on_train_result`` callbacks (the others are kept)."""
    add_callback(config, "on_algorithm_init", clear_on_init)
    add_callback(config, "on_train_result", raise_on_report)
    return config
