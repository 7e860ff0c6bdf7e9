"""The one exception type for bad input: :class:`ConfigError`, carrying the key path.

Every validator in the package raises ``ConfigError(key, problem)``; callers that nest a section
re-raise it under their prefix (:meth:`ConfigError.under`) and the YAML loader adds the file
(:meth:`ConfigError.in_file`), so the user reads one line in one style::

    configs/x.yaml: model_config.circuit.n_qubits: must be an int in 1..24, got 10000 (a statevector
    of 10000 qubits needs ...)

``ConfigError`` subclasses both ``ValueError`` and ``TypeError`` (like NumPy's ``AxisError``), so
code written against the built-in exceptions keeps working.

Example:
    >>> err = ConfigError("n_qubits", "must be an int >= 1, got 0").under("model_config.circuit")
    >>> err.key
    'model_config.circuit.n_qubits'
    >>> str(err.in_file("configs/x.yaml"))
    'configs/x.yaml: model_config.circuit.n_qubits: must be an int >= 1, got 0'
"""

from __future__ import annotations

from typing import Optional


class ConfigError(ValueError, TypeError):
    """A bad configuration value, refused before Ray starts.

    Args:
        key: dotted key path of the offending entry (``""`` for the document itself).
        problem: what is wrong and what is allowed, e.g. ``"must be one of ['a', 'b'], got 'c'"``.
        source: the file the key was read from, if any.

    Attributes:
        key, problem, source: as given.
    """

    def __init__(self, key: str, problem: str, source: Optional[str] = None) -> None:
        self.key = key
        self.problem = problem
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.key}: {self.problem}" if self.key else f"{where}{self.problem}"

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self):  # picklable across Ray processes
        return (type(self), (self.key, self.problem, self.source))

    def under(self, prefix: str) -> "ConfigError":
        """The same error with ``prefix`` put in front of its key path (unless it already starts
        with it: validators of a section may name their section themselves)."""
        if not prefix or self.key == prefix or self.key.startswith(prefix + "."):
            return self
        key = f"{prefix}.{self.key}" if self.key else prefix
        return type(self)(key, self.problem, self.source)

    def in_file(self, source: str) -> "ConfigError":
        """The same error, naming the file it came from."""
        return type(self)(self.key, self.problem, str(source))


def reraise_under(prefix: str):
    """Context manager: a ``ConfigError`` raised inside gets ``prefix`` in front of its key path.

    Example:
        >>> with reraise_under("ppo"):  # doctest: +ELLIPSIS
        ...     raise ConfigError("lr", "must be a number > 0, got 'fast'")
        Traceback (most recent call last):
        ...
        rllib_quantum.errors.ConfigError: ppo.lr: must be a number > 0, got 'fast'
    """
    return _Prefix(prefix)


class _Prefix:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, ConfigError):
            raise err.under(self.prefix) from None
        return False
