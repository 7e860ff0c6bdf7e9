"""rllib-quantum: variational-quantum-circuit policies for Ray RLlib (new API stack).

Public API (documented in README.md):

- circuits: :class:`CircuitSpec`, :class:`QuantumLayer`, :func:`build_qnode`, :func:`draw_circuit`,
  :func:`stacked_forward`
- modules: :class:`QuantumPPORLModule`, :class:`StackedQuantumMultiRLModule`,
  :class:`TemperedPPOTorchRLModule` (RLlib's default PPO module with the same inverse temperature),
  :class:`MirroredPPOTorchRLModule` (the same made equivariant under a reflection, as ``mirror``),
  :class:`QuantumModelConfig`, :class:`NaturalGradientConfig`, :class:`MirrorConfig`, :data:`DEFAULT_MODEL_CONFIG`,
  :func:`validate_model_config`
- learners: :class:`QuantumPPOTorchLearner` (per-group learning rates, natural-gradient steps for
  quantum actors, circuit diagnostics),
  :class:`FastBatchingPPOTorchLearner` (RLlib's PPO learner, its per-agent batching vectorised)
- evaluation: :func:`evaluate_modules`, :func:`load_modules`, :class:`EvaluationReport`
- experiments: :func:`load_experiment`, :func:`build_experiment`, :class:`Experiment`
- strategies: :data:`STRATEGIES`, :func:`plan_strategy`, :func:`module_spec`
- envs: :func:`register_envs`, :func:`make_cooperative_pong`, :class:`JointAgentEnv`,
  :data:`COOPERATIVE_PONG`, :data:`COOPERATIVE_PONG_JOINT`, :data:`SIMPLE_SPREAD`
- averaging: :class:`ParameterAveragingCallback`, :func:`averaging_callback`
- swap-in: :func:`with_quantum_policies`
- search: :func:`load_search`
- plots: :func:`plot_learning_curves` (every run), :func:`plot_mean_curves` (one mean per group of
  runs) and :func:`mean_curve_table` (its numbers)
- reproducibility: :func:`reproducible_runtime_env` (one ``PYTHONHASHSEED`` for Ray's workers)
- process settings: :func:`install_gc_freeze` (every training process freezes its long-lived
  objects out of Python's garbage-collector scans once built; YAML experiments' ``gc_freeze``)
- errors: :class:`ConfigError` (every bad-input error; ``.key`` is the dotted key path)
"""

from rllib_quantum.callbacks import ParameterAveragingCallback, averaging_callback
from rllib_quantum.circuits import CircuitSpec, QuantumLayer, build_qnode, stacked_forward
from rllib_quantum.circuits import draw as draw_circuit
from rllib_quantum.config import Experiment, build_experiment, load_experiment
from rllib_quantum.errors import ConfigError
from rllib_quantum.evaluation import EvaluationReport, evaluate_modules, load_modules
from rllib_quantum.envs import (
    COOPERATIVE_PONG,
    COOPERATIVE_PONG_JOINT,
    SIMPLE_SPREAD,
    JointAgentEnv,
    make_cooperative_pong,
    register_envs,
)
from rllib_quantum.learners import FastBatchingPPOTorchLearner, QuantumPPOTorchLearner
from rllib_quantum.modules import (
    DEFAULT_MODEL_CONFIG,
    MirrorConfig,
    MirroredPPOTorchRLModule,
    NaturalGradientConfig,
    QuantumModelConfig,
    QuantumPPORLModule,
    StackedQuantumMultiRLModule,
    TemperedPPOTorchRLModule,
    validate_model_config,
)
from rllib_quantum.plotting import mean_curve_table, plot_learning_curves, plot_mean_curves
from rllib_quantum.gc_freeze import install as install_gc_freeze
from rllib_quantum.reproducibility import reproducible_runtime_env
from rllib_quantum.search import load_search
from rllib_quantum.strategies import STRATEGIES, module_spec, plan_strategy
from rllib_quantum.swap import with_quantum_policies

__version__ = "0.1.0"

__all__ = [
    "COOPERATIVE_PONG",
    "COOPERATIVE_PONG_JOINT",
    "DEFAULT_MODEL_CONFIG",
    "SIMPLE_SPREAD",
    "STRATEGIES",
    "StackedQuantumMultiRLModule",
    "TemperedPPOTorchRLModule",
    "CircuitSpec",
    "ConfigError",
    "EvaluationReport",
    "Experiment",
    "JointAgentEnv",
    "MirrorConfig",
    "MirroredPPOTorchRLModule",
    "NaturalGradientConfig",
    "ParameterAveragingCallback",
    "QuantumLayer",
    "QuantumModelConfig",
    "QuantumPPORLModule",
    "FastBatchingPPOTorchLearner",
    "QuantumPPOTorchLearner",
    "averaging_callback",
    "build_experiment",
    "build_qnode",
    "draw_circuit",
    "evaluate_modules",
    "install_gc_freeze",
    "load_experiment",
    "load_modules",
    "load_search",
    "make_cooperative_pong",
    "mean_curve_table",
    "module_spec",
    "plan_strategy",
    "plot_learning_curves",
    "plot_mean_curves",
    "register_envs",
    "reproducible_runtime_env",
    "stacked_forward",
    "validate_model_config",
    "with_quantum_policies",
]
