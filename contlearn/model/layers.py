"""Trainable building blocks that methods put on a backbone's sites."""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "tanh": nn.Tanh}


class BottleneckAdapter(nn.Module):
    """h + up(act(down(h))): d -> m -> d with a residual; starts near the identity."""

    def __init__(self, d: int, m: int, nonlinearity: str, init_std: float):
        super().__init__()
        self.down = nn.Linear(d, m)
        self.act = ACTIVATIONS[nonlinearity]()
        self.up = nn.Linear(m, d)
        std = init_std
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(self.act(self.down(h)))  # [B, T, d]
