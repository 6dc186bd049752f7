"""Model surgery: the hook walk and the generic folding passes behind ``reparam.reparameterize``.

Three passes, in order, each exact or a no-op:

1. hooks: every module with a ``reparameterize()`` method is replaced by what it returns, outermost
   first (a hook sees its own training-form children), then the walk descends into the result;
2. containers: inside an ``nn.Sequential``, a conv followed by a BatchNorm, or a BatchNorm followed
   by an unpadded conv, becomes one conv (the BatchNorm becomes ``nn.Identity`` so child names, and
   so checkpoint keys, stay put);
3. graph: ``torch.fx`` traces the model to find the same two patterns in ``forward`` code
   (``self.bn(self.conv(x))``) where no container shows them. A pattern is folded only when the
   intermediate tensor has no other user and each module is called once; the surgery is done on
   the original modules (the traced graph is only read), so the model keeps its classes.
   A model fx cannot trace (data-dependent control flow) skips this pass, which is reported.

The generic passes leave Linear + BatchNorm1d pairs alone: which axis a BatchNorm1d normalizes
depends on the rank of its input ((N, C) or (N, C, L)), which neither the module structure nor an
untyped graph shows, so the fold could be wrong. Blocks that pair them (``BNLinear``) fold through
their hook, where the layout is known.
"""
from __future__ import annotations

import torch
from torch import nn

from reparam.fuse import fold_bn_into_following_conv, fuse_bn_tensors
from reparam.layers import conv_from

_BatchNorm = nn.modules.batchnorm._BatchNorm
_Conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def apply_hooks(module: nn.Module) -> nn.Module:
    """``module`` with every block that has a ``reparameterize()`` hook replaced by its result."""
    hook = getattr(module, "reparameterize", None)
    if callable(hook):
        replaced = hook()
        if not isinstance(replaced, nn.Module):
            raise TypeError(f"{type(module).__name__}.reparameterize() returned {type(replaced).__name__}, "
                            "not an nn.Module")
        module = replaced
    for name, child in list(module.named_children()):
        new_child = apply_hooks(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def _foldable_bn(module: nn.Module) -> bool:
    return isinstance(module, _BatchNorm) and module.running_mean is not None and not module.training


def _unpadded(conv: nn.Module) -> bool:
    padding = conv.padding
    return padding == "valid" or all(p == 0 for p in (padding if isinstance(padding, tuple) else (padding,)))


def fold_layer_then_bn(layer: nn.Module, bn: nn.Module) -> nn.Module | None:
    """One conv equal to ``bn(conv(x))``, or None where that is not an exact fold."""
    if not isinstance(layer, _Conv) or not _foldable_bn(bn) or layer.out_channels != bn.num_features:
        return None
    return conv_from(layer, *fuse_bn_tensors(layer.weight, layer.bias, bn)).train(layer.training)


def fold_bn_then_layer(bn: nn.Module, layer: nn.Module) -> nn.Module | None:
    """One conv equal to ``conv(bn(x))``, or None where that is not an exact fold (a padded conv)."""
    if not _foldable_bn(bn) or not isinstance(layer, _Conv) or not _unpadded(layer):
        return None
    if layer.in_channels != bn.num_features:
        return None
    weight, bias = fold_bn_into_following_conv(bn, layer.weight, layer.bias, groups=layer.groups)
    return conv_from(layer, weight, bias).train(layer.training)


def fold_containers(model: nn.Module) -> int:
    """Fold conv->BN and BN->conv neighbours inside every ``nn.Sequential``; the number of BatchNorms folded."""
    folded = 0
    for container in list(model.modules()):
        if not isinstance(container, nn.Sequential):
            continue
        names = list(container._modules)
        for first, second in zip(names, names[1:]):
            a, b = container._modules[first], container._modules[second]
            fused = fold_layer_then_bn(a, b)
            if fused is not None:
                container._modules[first], container._modules[second] = fused, nn.Identity()
                folded += 1
                continue
            fused = fold_bn_then_layer(a, b)
            if fused is not None:
                container._modules[first], container._modules[second] = nn.Identity(), fused
                folded += 1
    return folded


def _set_submodule(model: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, child = target.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def fold_traced(model: nn.Module) -> tuple[int, str | None]:
    """Fold the conv->BN and BN->conv patterns ``torch.fx`` finds in forward code.

    Returns the number of BatchNorms folded and, where fx could not trace the model, why.
    """
    if not any(_foldable_bn(m) for m in model.modules()):
        return 0, None
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as error:  # fx raises many types for untraceable Python; all mean "skip this pass"
        return 0, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1

    def single_module_call(node: torch.fx.Node) -> nn.Module | None:
        if node.op != "call_module" or calls[node.target] != 1:
            return None
        return model.get_submodule(node.target)

    folded = 0
    for node in graph.nodes:
        bn = single_module_call(node)
        if bn is None or not _foldable_bn(bn) or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        if isinstance(source, torch.fx.Node) and len(source.users) == 1:
            layer = single_module_call(source)
            fused = fold_layer_then_bn(layer, bn) if layer is not None and len(source.args) == 1 else None
            if fused is not None:
                _set_submodule(model, source.target, fused)
                _set_submodule(model, node.target, nn.Identity())
                folded += 1
                continue
        if len(node.users) == 1:
            user = next(iter(node.users))
            layer = single_module_call(user)
            if layer is not None and len(user.args) == 1 and user.args[0] is node and not user.kwargs:
                fused = fold_bn_then_layer(bn, layer)
                if fused is not None:
                    _set_submodule(model, user.target, fused)
                    _set_submodule(model, node.target, nn.Identity())
                    folded += 1
    return folded, None
