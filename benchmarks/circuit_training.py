"""Forward + backward of a QuantumLayer on a training batch: PennyLane vs the fast torch statevector path.

What an RLlib learner does on every minibatch: a batch of observations through the circuit, then
gradients for the weights and scalings. Measured side by side in one process, on the same inputs
and the same weights:

* ``pennylane default.qubit backprop``: ``execution="pennylane"``, parameter broadcasting (one
  circuit for the whole batch), torch autograd through PennyLane's simulator;
* ``pennylane lightning.qubit adjoint``: does not broadcast (PennyLane loops over the batch), so it
  runs on a reduced batch (``lightning_batch``) at the sizes in ``lightning_qubits``; the table
  also gives its time scaled to the full batch (linear: one circuit per sample);
* ``fast``: ``execution="auto"``, the torch statevector differentiated by torch autograd.

Run:
    python benchmarks/circuit_training.py
    python benchmarks/circuit_training.py --qubits 4 8 --batch 1024 --threads 2
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Tuple

import torch
from common import median_seconds, parse_args, setup_torch


@dataclasses.dataclass
class Args:
    qubits: Tuple[int, ...] = (8, 12)
    """register sizes to measure"""
    n_layers: int = 3
    """variational layers"""
    ansatz: str = "strongly_entangling"
    """variational ansatz"""
    encodings: Tuple[str, ...] = ("reuploading",)
    """input encodings to measure (one row each)"""
    rotations: Tuple[str, ...] = ("X", "Y")
    """encoding rotations to measure (Y costs the fast path one extra change of frame per layer)"""
    batch: int = 256
    """training batch"""
    lightning_qubits: Tuple[int, ...] = (8,)
    """sizes at which lightning.qubit + adjoint is also measured"""
    lightning_batch: int = 32
    """its reduced batch"""
    threads: int = 1
    """torch intra-op threads"""
    min_seconds: float = 2.0
    """measure each variant for at least this long (after warm-up), and at least 3 times"""
    seed: int = 0
    """seed for weights and inputs"""


def train_step(layer, x: torch.Tensor, probe: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``sum(layer(x) * probe)`` (gradients cleared first)."""

    def step():
        layer.zero_grad(set_to_none=True)
        (layer(x) * probe).sum().backward()

    return step


def main() -> None:
    args = parse_args(Args, __doc__.split("\n")[0])
    print(setup_torch(args.threads, args.seed))

    from rllib_quantum.circuits import QuantumLayer

    print(f"circuit: {args.ansatz}, {args.n_layers} layers; forward + backward, float32 inputs; "
          f"median of >= {args.min_seconds}s\n")

    header = f"{'qubits':>6} {'encoding':>11} {'rot':>3} {'variant':>34} {'batch':>5} {'ms/step':>9} {'ms/256 rows':>11} {'vs fast':>8}"
    print(header)
    print("-" * len(header))
    ratios = []
    for n_qubits in args.qubits:
        for encoding in args.encodings:
            for rotation in args.rotations:
                spec = dict(n_qubits=n_qubits, n_layers=args.n_layers, ansatz=args.ansatz, encoding=encoding, rotation=rotation)
                fast = QuantumLayer({**spec, "execution": "fast"})
                x = torch.rand(args.batch, n_qubits) * 2 - 1
                probe = torch.randn(args.batch, n_qubits)
                variants = [("pennylane default.qubit backprop", dict(execution="pennylane"), args.batch)]
                if n_qubits in args.lightning_qubits:
                    lightning = dict(execution="pennylane", device="lightning.qubit", diff_method="adjoint")
                    variants.append(("pennylane lightning.qubit adjoint", lightning, args.lightning_batch))

                t_fast = median_seconds(train_step(fast, x, probe), args.min_seconds, min_repeats=3)
                rows = [("fast (torch statevector)", args.batch, t_fast)]
                for name, overrides, batch in variants:
                    layer = QuantumLayer({**spec, **overrides})
                    layer.load_state_dict(fast.state_dict())
                    step = train_step(layer, x[:batch], probe[:batch])
                    rows.append((name, batch, median_seconds(step, args.min_seconds, min_repeats=3)))
                    _check_gradients(fast, layer, x[:batch], probe[:batch])
                for name, batch, seconds in rows:
                    per_256 = seconds * 256 / batch
                    ratio = per_256 / (t_fast * 256 / args.batch)
                    print(f"{n_qubits:>6} {encoding:>11} {rotation:>3} {name:>34} {batch:>5} {seconds * 1e3:>9.1f} "
                          f"{per_256 * 1e3:>11.1f} {ratio:>7.1f}x")
                    if name != rows[0][0]:
                        ratios.append((n_qubits, encoding, rotation, name, ratio))
            print()

    print("ratios (time per sample, PennyLane / fast):")
    for n_qubits, encoding, rotation, name, ratio in ratios:
        print(f"  {n_qubits:>2} qubits {encoding:<11} {rotation}  {name:<34} {ratio:6.1f}x")
    for n_qubits, goal in ((8, 5.0), (12, 2.0)):
        got = [r for n, _, _, name, r in ratios if n == n_qubits and "default.qubit" in name]
        if got:
            print(f"goal >= {goal:.0f}x vs default.qubit at {n_qubits} qubits: "
                  f"{'met' if min(got) >= goal else 'NOT met'} (worst {min(got):.1f}x)")


def _check_gradients(fast, layer, x, probe) -> None:
    """The two paths must agree before their timings mean anything."""
    grads = []
    for module in (fast, layer):
        module.zero_grad(set_to_none=True)
        (module(x) * probe).sum().backward()
        grads.append(module.weights.grad.double())
    diff = float((grads[0] - grads[1]).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"weight gradients differ by {diff:.2e} between fast and PennyLane")


if __name__ == "__main__":
    main()
