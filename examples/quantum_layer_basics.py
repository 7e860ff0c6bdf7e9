"""A variational circuit as a torch layer: build, inspect, run a batch, train it, check it.

Reads top to bottom; the arguments live in ``Args``, each one also a flag (``--help`` lists
them). Runs in a few seconds on a laptop CPU; ``--steps 3 --batch 8`` is the CI-sized run:

    python examples/quantum_layer_basics.py [--n-qubits 4 --steps 100 ...]
"""

import dataclasses
import time

import torch

from rllib_quantum import CircuitSpec, QuantumLayer, build_qnode, draw_circuit
from rllib_quantum.script_args import parse_args


@dataclasses.dataclass
class Args:
    n_qubits: int = 4
    n_layers: int = 2
    ansatz: str = "strongly_entangling"  # or "hardware_efficient"
    encoding: str = "reuploading"  # or "angle"
    batch: int = 64
    steps: int = 100
    lr: float = 0.05
    seed: int = 0


args = parse_args(Args, description=__doc__)  # Args() with the command line's flags applied
torch.manual_seed(args.seed)

# 1. Describe the circuit once; every execution path reads this spec.
spec = CircuitSpec(n_qubits=args.n_qubits, n_layers=args.n_layers, ansatz=args.ansatz, encoding=args.encoding)
print(draw_circuit(spec))
print(f"trainable circuit parameters: {spec.n_parameters}")

# 2. A torch layer: (batch, n_qubits) -> (batch, n_qubits) PauliZ expectations, one call per batch.
layer = QuantumLayer(spec)
x = torch.rand(args.batch, args.n_qubits) * 2 - 1
print(f"execution path: {layer.execution_path}, output shape: {tuple(layer(x).shape)}")

# 3. It is an ordinary nn.Module: fit <Z_0> to a target function of the inputs.
target = torch.sin(torch.pi * x[:, 0]) * 0.8
optimizer = torch.optim.Adam(layer.parameters(), lr=args.lr)
start = time.perf_counter()
for step in range(args.steps):
    loss = torch.mean((layer(x)[:, 0] - target) ** 2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 25 == 0 or step == args.steps - 1:
        print(f"step {step:3d}  mse {loss.item():.4f}")
print(f"{args.steps} training steps in {time.perf_counter() - start:.2f} s")

# 4. The fast path computes what PennyLane computes: compare with the QNode of the same spec.
qnode = build_qnode(spec)
with torch.no_grad():
    ours = layer(x[:8])
    reference = torch.stack(qnode(x[:8], layer.weights, layer.input_scale), dim=-1) * layer.output_scale
print(f"max |fast - PennyLane| on 8 inputs: {(ours.double() - reference).abs().max().item():.2e}")
