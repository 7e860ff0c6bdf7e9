"""Callbacks that hang off the strategy layer: parameter averaging across modules.

Example:
    >>> from rllib_quantum.callbacks import averaging_callback
    >>> cb = averaging_callback(every=2, weights="agent_steps")
    >>> cb.every, cb.weights
    (2, 'agent_steps')
"""

from rllib_quantum.callbacks.options import DEFAULT_AVERAGING_OPTIONS, validate_averaging_options
from rllib_quantum.callbacks.parameter_averaging import RESULT_KEY, ParameterAveragingCallback, averaging_callback

__all__ = [
    "DEFAULT_AVERAGING_OPTIONS",
    "RESULT_KEY",
    "ParameterAveragingCallback",
    "averaging_callback",
    "validate_averaging_options",
]
