"""Export the peer's artifacts (timm + reparameterize_model + torch.onnx opset 17 / litert_torch) on weights that
make the whole graph compute, as trained weights do. Runs in the peer's virtualenv (it needs timm), called by
bench_peer_ratio.py.

The peer's own export (``../shared/peer/peer_export.py``) uses timm's random init, which leaves work a
converter removes and trained weights never would:
- timm zero-initializes the last BatchNorm of residual branches in some families (MobileViT's
  ``zero_init_last``, RepViT's ``bn_weight_init=0``): the branch computes exactly zero, and LiteRT's
  converter drops whole blocks (the peer's ``mobilevit_xxs.tflite`` lacks 3 of its 7 inverted-residual blocks);
- every LayerNorm starts at weight 1, bias 0, so litert_torch drops its affine multiply and add (the peer's
  ``swin_tiny`` .tflite has 27 fewer MUL and ADD ops than the same model with trained weights).
Here every normalization layer (BatchNorm, LayerNorm, GroupNorm, timm's channels-first LayerNorm2d)
gets seeded non-trivial statistics and affine parameters (weight in [0.5, 1.5), bias and running mean
N(0, 0.1), running variance in [0.5, 1.5)) before ``reparameterize_model``; nothing else differs from the
peer's export.

    PEER/venv/bin/python bench/peer_export_fair.py OUT_DIR TIMM_NAME...
"""
import os
import sys

import timm
import torch
from timm.utils.model import reparameterize_model


NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)


@torch.no_grad()
def trained_like_norms(model: torch.nn.Module, seed: int = 0) -> tuple[int, int]:
    """Give every normalization layer non-trivial parameters and statistics; returns (layers, of which were
    exactly zero-gated)."""
    generator = torch.Generator().manual_seed(seed)
    layers = zeroed = 0
    for module in model.modules():
        if not isinstance(module, NORMS):
            continue
        layers += 1
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if weight is not None:
            zeroed += int(not bool(weight.abs().max() > 0))
            weight.copy_(0.5 + torch.rand(weight.shape, generator=generator))
        if bias is not None:
            bias.copy_(0.1 * torch.randn(bias.shape, generator=generator))
        if getattr(module, "running_mean", None) is not None:
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return layers, zeroed


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:]:
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
        layers, zeroed = trained_like_norms(model)
        model = reparameterize_model(model)
        sample = torch.randn(1, *model.pretrained_cfg["input_size"])
        onnx_path = os.path.join(out, f"{name}.onnx")
        if not os.path.exists(onnx_path):
            torch.onnx.export(model, (sample,), onnx_path, opset_version=17, dynamo=False)
        tflite_path = os.path.join(out, f"{name}.tflite")
        if not os.path.exists(tflite_path):
            import litert_torch
            litert_torch.convert(model, (sample,)).export(tflite_path)
        print(f"{name} ok ({layers} norm layers given trained-like parameters, {zeroed} of them zero-gated)",
              flush=True)


if __name__ == "__main__":
    main()
