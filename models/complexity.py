"""Parameter and MAC counts; MACs come from ``torch.utils.flop_counter``, not hand-written rules."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one eval-mode forward pass at ``input_shape`` (batch included).

    FlopCounterMode counts 2 FLOPs per MAC for matmuls and convolutions; halving gives MACs.
    Element-wise ops are not counted, as in the papers' MAC figures.
    """
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
