"""Classical pre-encoders: map an observation to ``n_qubits`` angles-to-be in [-1, 1]."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class PadEncoder(nn.Module):
    """Identity for vectors that fit the register; zero-pads ``(B, D)`` up to ``(B, n_qubits)``."""

    def __init__(self, in_dim: int, n_qubits: int) -> None:
        super().__init__()
        self.pad = n_qubits - in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(obs, (0, self.pad)) if self.pad else obs


class LinearEncoder(nn.Module):
    """``tanh(W obs + b)``: a vector wider than the register, squeezed to ``n_qubits`` numbers."""

    def __init__(self, in_dim: int, n_qubits: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_qubits)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(obs))


class CNNEncoder(nn.Module):
    """A small CNN for ``(B, H, W, C)`` frames: ReLU convs ("valid" padding), then ``tanh(linear)``.

    Args:
        shape: observation shape ``(H, W, C)``.
        n_qubits: output size.
        conv_filters: ``[[out_channels, kernel, stride], ...]``.
    """

    def __init__(self, shape: Sequence[int], n_qubits: int, conv_filters: Sequence[Sequence[int]]) -> None:
        super().__init__()
        h, w, c = shape
        layers = []
        for out_c, kernel, stride in conv_filters:
            layers += [nn.Conv2d(c, out_c, kernel, stride), nn.ReLU()]
            c, h, w = out_c, (h - kernel) // stride + 1, (w - kernel) // stride + 1
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Linear(c * h * w, n_qubits)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(self.convs(obs.permute(0, 3, 1, 2))))


def build_encoder(kind: str, shape: Sequence[int], n_qubits: int, conv_filters) -> nn.Module:
    """The encoder named ``kind`` ("none", "linear", "cnn") for observations of ``shape``."""
    if kind == "none":
        return PadEncoder(shape[0], n_qubits)
    if kind == "linear":
        return LinearEncoder(shape[0], n_qubits)
    return CNNEncoder(shape, n_qubits, conv_filters)


def mlp(in_dim: int, hiddens: Sequence[int], out_dim: int) -> nn.Sequential:
    """A tanh MLP ``in_dim -> hiddens... -> out_dim`` (linear last layer)."""
    layers, d = [], in_dim
    for h in hiddens:
        layers += [nn.Linear(d, h), nn.Tanh()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
