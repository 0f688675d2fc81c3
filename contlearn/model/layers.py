"""Trainable building blocks that methods put on a backbone's sites."""

from __future__ import annotations

import math

from torch import Tensor, nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    """up(act(down(h))): d -> m -> d. ``init_std`` > 0: both projections from a normal
    truncated at 2 std, biases zero (near zero output); None: ``down`` as nn.Linear initialises
    it and ``up`` zero (exactly zero output)."""

    def __init__(self, d: int, m: int, nonlinearity: str, init_std: float | None):
        super().__init__()
        self.down = nn.Linear(d, m)
        self.act = ACTIVATIONS[nonlinearity]()
        self.up = nn.Linear(m, d)
        if init_std is None:
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            for tensor in (self.down.bias, self.up.weight, self.up.bias):
                nn.init.zeros_(tensor)
            return
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            nn.init.zeros_(linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.up(self.act(self.down(h)))  # [..., d]


class BottleneckAdapter(Bottleneck):
    """h + up(act(down(h))): a bottleneck with a residual; starts near the identity."""

    def forward(self, h: Tensor) -> Tensor:
        return h + super().forward(h)  # [B, T, d]


class LowRank(nn.Module):
    """LoRA's update of a linear layer, (dropout(x) A^T B^T) * alpha / r, with A [r, in] as
    peft initialises it (Kaiming-uniform, a = sqrt(5)) and B [out, r] zero: exactly zero at
    init."""

    def __init__(self, d_in: int, d_out: int, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.lora_A = nn.Linear(d_in, rank, bias=False)
        self.lora_B = nn.Linear(rank, d_out, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / rank
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.lora_B(self.lora_A(self.dropout(x))) * self.scaling


class Scale(nn.Module):
    """(IA)^3's learned vector, ones at init (exactly the identity)."""

    def __init__(self, size: int):
        super().__init__()
        import torch

        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight
