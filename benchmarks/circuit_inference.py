"""Batch-1 inference latency of a QuantumLayer: PennyLane QNode vs the fast torch statevector path.

What an RLlib env runner does on every step: one observation, no gradient. Measured side by side in
one process, on the same inputs and the same weights:

* ``pennylane``: ``execution="pennylane"`` (a ``default.qubit`` QNode, backprop), under ``torch.no_grad()``;
* ``fast uncached``: the torch statevector (Kronecker blocks), recomputing the weights-only part
  on every call;
* ``fast cached``: ``QuantumLayer`` with ``execution="auto"`` under ``torch.no_grad()``: the
  weights-only part is cached (``angle`` encoding: one matrix for all layers), so a call is one
  encoding and one matrix-vector product (Kronecker blocks above 8 qubits).

Run:
    python benchmarks/circuit_inference.py
    python benchmarks/circuit_inference.py --qubits 4 6 8 --threads 2
"""

from __future__ import annotations

import dataclasses
import time
from typing import Tuple

import torch
from common import median_seconds, parse_args, setup_torch


@dataclasses.dataclass
class Args:
    qubits: Tuple[int, ...] = (4, 8, 12)
    """register sizes to measure"""
    n_layers: int = 3
    """variational layers"""
    ansatz: str = "strongly_entangling"
    """variational ansatz"""
    encodings: Tuple[str, ...] = ("angle", "reuploading")
    """input encodings to measure (one table row each)"""
    threads: int = 1
    """torch intra-op threads (an RLlib env runner uses 1)"""
    min_seconds: float = 1.0
    """measure each variant for at least this long (after warm-up)"""
    seed: int = 0
    """seed for weights and inputs"""


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    print(setup_torch(args.threads, args.seed))

    from rllib_quantum.circuits import QuantumLayer

    print(f"circuit: {args.ansatz}, {args.n_layers} layers, rotation X, batch 1, no grad; median of >= {args.min_seconds}s\n")

    header = f"{'qubits':>6} {'encoding':>11} {'pennylane':>12} {'fast uncached':>14} {'fast cached':>12} {'speedup':>9} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    rows = []
    for n_qubits in args.qubits:
        for encoding in args.encodings:
            spec = dict(n_qubits=n_qubits, n_layers=args.n_layers, ansatz=args.ansatz, encoding=encoding)
            fast = QuantumLayer({**spec, "execution": "fast"})
            pennylane = QuantumLayer({**spec, "execution": "pennylane"})
            pennylane.load_state_dict(fast.state_dict())
            x = torch.rand(1, n_qubits) * 2 - 1

            with torch.no_grad():
                t_pl = median_seconds(lambda: pennylane(x), args.min_seconds, min_repeats=5)
                t_uncached = median_seconds(
                    lambda: fast._fast(x, fast.weights, fast.input_scale, dense=False),
                    args.min_seconds,
                    min_repeats=5,
                )
                t_cached = median_seconds(lambda: fast(x), args.min_seconds, min_repeats=5)
                diff = float((fast(x) - pennylane(x)).abs().max())
            rows.append((n_qubits, encoding, t_pl, t_cached))
            print(f"{n_qubits:>6} {encoding:>11} {t_pl * 1e3:>9.2f} ms {t_uncached * 1e6:>11.0f} us "
                  f"{t_cached * 1e6:>9.0f} us {t_pl / t_cached:>8.0f}x {diff:>11.1e}")

    print("\nratios (pennylane / fast cached):")
    for n_qubits, encoding, t_pl, t_cached in rows:
        print(f"  {n_qubits:>2} qubits, {encoding:<11}: {t_pl / t_cached:7.0f}x")
    goal = [t_pl / t_cached for n, _, t_pl, t_cached in rows if n == 8]
    if goal:
        print(f"goal >= 100x at 8 qubits: {'met' if min(goal) >= 100 else 'NOT met'} (worst {min(goal):.0f}x)")


if __name__ == "__main__":
    main()
