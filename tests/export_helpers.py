"""Helpers shared by the export tests: a model whose every branch carries signal."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import models
import reparam

# Export reparameterizes by default; until reparam.reparameterize (issue 3) lands, those tests skip, saying why.
needs_reparam = pytest.mark.skipif(not hasattr(reparam, "reparameterize"),
                                   reason="reparam.reparameterize (issue 3) has not landed; export uses it by default")


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
    """A registered model with randomized BatchNorm (see ``randomize_batchnorm``)."""
    return randomize_batchnorm(models.create_model(name))
