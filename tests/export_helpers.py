"""Helpers shared by the export tests: a model whose every branch carries signal, and this checkout's commit."""
from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from torch import nn

from models.probe import probe_model
from models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def randomize_batchnorm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, in place.

    Fresh models zero-initialize some BatchNorm weights (RepViT's residual FFN ends in one), so a
    converter constant-folds those branches away and parity would not exercise them.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
    return model


def signal_model(name: str) -> nn.Module:
    """A registered model on its probe weights (``models.probe``, the seed from its name): every layer
    reaches the logits, and the export gate sees the same weights as its own probe (one conversion)."""
    return probe_model(name)


def head_commit() -> str | None:
    """This checkout's HEAD, with ``-dirty`` when tracked files differ from it (as manifests record it);
    None outside a git checkout."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


# a hand-built spec and net for the ExecuTorch tests: lowering cost grows with the node count
TINY_SPEC = ModelSpec(name="tiny_et", family="test", variant="tiny", paper="-", reference_impl="-",
                      input_size=(3, 32, 32), num_classes=10)


class TinyNet(nn.Module):
    """Conv-BN-hardswish, a depthwise conv, global pool, a linear head: the ops the zoo is made of."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.dw(x) + x
        return self.head(x.mean((2, 3)))


def tiny_net() -> nn.Module:
    """A seeded ``TinyNet`` with signal in every BatchNorm."""
    torch.manual_seed(0)
    return randomize_batchnorm(TinyNet())
